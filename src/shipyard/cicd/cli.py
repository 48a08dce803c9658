"""``shipyard cicd``: providers, jobs, sync and trigger, through the REST API.

Talks to ``SHIPYARD_URL`` with the API token in ``SHIPYARD_TOKEN`` (see ``shipyard.client``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, NoReturn
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(no_args_is_help=True, help="CI/CD providers, their jobs, and triggering them.")
console = Console()
errors = Console(stderr=True)

FINAL_STEP_STATUSES = ("success", "failed", "cancelled")


def fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def api() -> ApiClient:
    try:
        return ApiClient()
    except ApiError as exc:
        fail(str(exc))


def call(http: ApiClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return http.request(method, path, **kwargs)
    except ApiError as exc:
        fail(str(exc))


def _all(http: ApiClient, path: str, params: dict[str, Any] | None = None) -> list[Any]:
    try:
        return list(http.paginate(path, limit=200, **(params or {})))
    except ApiError as exc:
        fail(str(exc))


def _resolve_provider(http: ApiClient, reference: str) -> dict[str, Any]:
    providers = _all(http, "/cicd-providers")
    matches = [p for p in providers if p["id"] == reference or p["name"] == reference]
    if not matches:
        fail(f"no CI/CD provider with id or name '{reference}'")
    if len(matches) > 1:
        fail(f"several providers are named '{reference}'; use the id")
    provider: dict[str, Any] = matches[0]
    return provider


@app.command("providers")
def providers() -> None:
    """List the CI/CD providers."""
    with api() as http:
        rows = _all(http, "/cicd-providers")
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
    console.print(table)


@app.command("jobs")
def jobs(
    provider: Annotated[
        str | None, typer.Option(help="Only this provider's jobs (id or name).")
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Text in the name, path or description.")
    ] = None,
) -> None:
    """List the catalogued jobs with their parameters."""
    with api() as http:
        params: dict[str, Any] = {}
        if provider:
            params["provider_id"] = _resolve_provider(http, provider)["id"]
        if search:
            params["search"] = search
        rows = _all(http, "/cicd-jobs", params)
    table = Table("ID", "Path", "Parameters")
    for job in rows:
        described = ", ".join(
            f"{p['name']}:{p['type']}" + ("*" if p.get("required") else "")
            for p in job["parameters"]
        )
        table.add_row(job["id"], job["path"] or job["name"], described)
    console.print(table)


@app.command("sync")
def sync(
    provider: Annotated[str, typer.Argument(help="Provider id or name.")],
    wait: Annotated[bool, typer.Option(help="Wait until the sync finished.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 300.0,
) -> None:
    """Refresh a provider's job catalogue."""
    with api() as http:
        found = _resolve_provider(http, provider)
        before = found["last_synced_at"]
        result = call(http, "POST", f"/cicd-providers/{found['id']}/sync")
        console.print(f"sync of {found['name']} {result['status'].replace('_', ' ')}")
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = call(http, "GET", f"/cicd-providers/{found['id']}")
            if current["last_synced_at"] != before:
                console.print(f"{current['job_count']} jobs")
                return
            if current["error"] and current["updated_at"] != found["updated_at"]:
                fail(f"sync failed: {current['error']}")
            time.sleep(1.0)
        fail(f"the sync did not finish within {timeout:g} s")


def _parse_params(values: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            fail(f"--param takes NAME=VALUE, got '{value}'")
        parsed[name] = text
    return parsed


@app.command("trigger")
def trigger(
    job_id: Annotated[UUID, typer.Argument(help="Job id (see `shipyard cicd jobs`).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE; repeat for more.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Deployment name.")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the build until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600.0,
) -> None:
    """Run a job as a deployment with this one CI/CD step."""
    parameters = _parse_params(param or [])
    with api() as http:
        job = call(http, "GET", f"/cicd-jobs/{job_id}")
        deployment = call(
            http,
            "POST",
            "/deployments",
            json={
                "name": name or f"Run {job['path'] or job['name']}",
                "cicd_steps": [{"cicd_job_id": str(job_id), "parameters": parameters}],
            },
        )
        console.print(f"deployment {deployment['id']} created")
        if not wait:
            return
        _follow(http, deployment["id"], timeout)


def _follow(http: ApiClient, deployment_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    shown: tuple[Any, ...] = ()
    while time.monotonic() < deadline:
        steps = call(http, "GET", f"/deployments/{deployment_id}/cicd-mappings")
        step = steps[0] if steps else None
        if step is not None:
            state = (step["status"], step["build_number"])
            if state != shown:
                build = f" build #{step['build_number']}" if step["build_number"] else ""
                link = f" {step['build_url']}" if step["build_url"] else ""
                console.print(f"{step['status']}{build}{link}", highlight=False)
                shown = state
            if step["status"] in FINAL_STEP_STATUSES:
                if step["status"] != "success":
                    fail(step["error"] or f"the step ended {step['status']}")
                return
        time.sleep(1.0)
    fail(f"the build did not finish within {timeout:g} s")
