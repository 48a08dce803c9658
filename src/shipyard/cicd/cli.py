"""``shipyard cicd``: providers, jobs, sync and trigger, through the REST API.

Providers are named by name or id, jobs by id or path; ``-o json`` prints the API's objects.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import (
    ApiTyper,
    api_client,
    complete,
    fail,
    name_argument,
    name_option,
    resolve,
)
from shipyard.client.output import emit, note

app = ApiTyper(no_args_is_help=True, help="CI/CD providers, their jobs, and triggering them.")

FINAL_STEP_STATUSES = ("success", "failed", "cancelled")
# A job is named by its id, or by its path (or name) in the catalogue: `team/app/deploy`.
CICD_JOB = names.Kind("CI/CD job", "/cicd-jobs", fields=("path", "name"), filter_param="search")

ProviderArgument = Annotated[
    str,
    name_argument(names.CICD_PROVIDER, "Provider name or ID."),
]


def providers_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("ID", "Name", "Type", "URL", "Jobs", "Last synced", "Error")
    for p in rows:
        table.add_row(
            p["id"],
            p["name"],
            p["type"],
            p["url"] or "",
            str(p["job_count"]),
            p["last_synced_at"] or "never",
            p["error"] or "",
        )
    return table


@app.command("providers")
def providers() -> None:
    """List the CI/CD providers."""
    with api_client() as api:
        rows = list(api.paginate("/cicd-providers", limit=200))
    emit(rows, table=lambda: providers_table(rows))


@app.command("show")
def show(provider: ProviderArgument) -> None:
    """Show one CI/CD provider: URL, jobs catalogued, last sync and its error."""
    with api_client() as api:
        found = api.get(f"/cicd-providers/{resolve(api, names.CICD_PROVIDER, provider)}")
    emit(found, table=lambda: providers_table([found]))


@app.command("jobs")
def jobs(
    provider: Annotated[
        str | None,
        name_option(names.CICD_PROVIDER, "Only this provider's jobs (name or ID).", metavar=None),
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Text in the name, path or description.")
    ] = None,
) -> None:
    """List the catalogued jobs with their parameters."""
    with api_client() as api:
        params: dict[str, Any] = {}
        if provider:
            params["provider_id"] = resolve(api, names.CICD_PROVIDER, provider)
        if search:
            params["search"] = search
        rows = list(api.paginate("/cicd-jobs", limit=200, **params))

    def table() -> Table:
        shown = Table("ID", "Path", "Parameters")
        for job in rows:
            described = ", ".join(
                f"{p['name']}:{p['type']}" + ("*" if p.get("required") else "")
                for p in job["parameters"]
            )
            shown.add_row(job["id"], job["path"] or job["name"], described)
        return shown

    emit(rows, table=table)


@app.command("sync")
def sync(
    provider: ProviderArgument,
    wait: Annotated[bool, typer.Option(help="Wait until the sync finished.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 300.0,
) -> None:
    """Refresh a provider's job catalogue.

    -o json: {"sync": {status, job_id}, "provider": {...}} (the provider after the sync with
    --wait, else as it was when the sync was queued)."""
    with api_client() as api:
        found = api.get(f"/cicd-providers/{resolve(api, names.CICD_PROVIDER, provider)}")
        before = found["last_synced_at"]
        result = api.post(f"/cicd-providers/{found['id']}/sync")
        current = found
        if wait:
            note(f"sync of {found['name']} {result['status'].replace('_', ' ')}")
            current = _wait_for_sync(api, found, before, timeout)
    emit(
        {"sync": result, "provider": current},
        table=lambda: (
            f"{current['job_count']} jobs"
            if wait
            else f"sync of {found['name']} {result['status'].replace('_', ' ')}"
        ),
    )


def _wait_for_sync(
    api: ApiClient, found: dict[str, Any], before: str | None, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current: dict[str, Any] = api.get(f"/cicd-providers/{found['id']}")
        if current["last_synced_at"] != before:
            return current
        if current["error"] and current["updated_at"] != found["updated_at"]:
            fail(f"sync failed: {current['error']}")
        time.sleep(1.0)
    fail(f"the sync did not finish within {timeout:g} s")


def _parse_params(values: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            fail(f"--param takes NAME=VALUE, got '{value}'", exits.USAGE)
        parsed[name] = text
    return parsed


@app.command("trigger")
def trigger(
    job: Annotated[
        str,
        typer.Argument(
            help="Job ID or path, e.g. team/app/deploy (see `shipyard cicd jobs`).",
            autocompletion=complete(CICD_JOB),
        ),
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE; repeat for more.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the build until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600.0,
) -> None:
    """Run a job as a deployment with this one CI/CD step.

    -o json: {"deployment": {...}, "step": {...}} (the CI/CD step as it ended with --wait, else
    null); the build's progress goes to stderr. Exit 1 when the build did not succeed."""
    parameters = _parse_params(param or [])
    with api_client() as api:
        found = api.get(f"/cicd-jobs/{resolve(api, CICD_JOB, job)}")
        deployment = api.post(
            "/deployments",
            {
                "name": name or f"Run {found['path'] or found['name']}",
                "cicd_steps": [{"cicd_job_id": found["id"], "parameters": parameters}],
            },
        )
        step = None
        if wait:
            note(f"deployment {deployment['id']} created")
            step = _follow(api, deployment["id"], timeout)
    emit(
        {"deployment": deployment, "step": step},
        table=lambda: None if wait else f"deployment {deployment['id']} created",
    )
    if step is not None and step["status"] != "success":
        fail(step["error"] or f"the step ended {step['status']}")


def _follow(api: ApiClient, deployment_id: str, timeout: float) -> dict[str, Any]:
    """Print the step's status as it changes; the step once it has ended."""
    deadline = time.monotonic() + timeout
    shown: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        steps = api.get(f"/deployments/{deployment_id}/cicd-mappings")
        step: dict[str, Any] | None = steps[0] if steps else None
        if step is not None:
            state = (step["status"], step["build_number"])
            if state != shown:
                build = f" build #{step['build_number']}" if step["build_number"] else ""
                link = f" {step['build_url']}" if step["build_url"] else ""
                note(f"{step['status']}{build}{link}")
                shown = state
            if step["status"] in FINAL_STEP_STATUSES:
                return step
        time.sleep(1.0)
    fail(f"the build did not finish within {timeout:g} s")
