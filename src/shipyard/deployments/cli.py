"""``shipyard deploy``: create, follow, list, show, cancel and re-run deployments over the REST API.

``watch``, ``create --wait`` and ``rerun --wait`` follow the live log (Server-Sent Events that
resume from ``Last-Event-ID`` when the connection drops) and exit with the run's outcome
(``shipyard.client.exits``). With ``-o json`` each log line is one JSON object on its own line
(the API's fields), and the last line is ``{"deployment": {...}, "results": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import ApiTyper, api_client, fail, name_option, resolve
from shipyard.client.output import emit
from shipyard.deployments.cli_follow import (
    LogFilters,
    all_results,
    announce,
    follow,
    print_download,
    results_table,
    styled,
    use_colour,
)

app = ApiTyper(
    help="Deployments: create, follow, list, show, cancel, re-run.", no_args_is_help=True
)


def parse_env(values: list[str], *, secret: bool) -> list[dict[str, Any]]:
    variables = []
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            fail(f"--{'secret' if secret else 'env'} takes NAME=VALUE, got {value!r}", exits.USAGE)
        variables.append({"name": name, "value": content, "secret": secret})
    return variables


@dataclass
class ScriptFinder:
    """A script's id from its id, or its path or name in the repository's catalogue at ``ref``
    (read once, when a script is first named by path)."""

    api: ApiClient
    repository_id: str | None
    ref: str | None
    catalogue: dict[str, Any] | None = None

    def __call__(self, value: str) -> str:
        if names.is_id(value):
            return value
        if self.repository_id is None:
            fail(f"--script {value!r}: a script by path needs --repository", exits.USAGE)
        if self.catalogue is None:
            self.catalogue = self.api.get(
                f"/repositories/{self.repository_id}/scripts", ref=self.ref
            )
        scripts = self.catalogue["scripts"]
        found = [item for item in scripts if item["path"] == value] or [
            item for item in scripts if item["name"] == value
        ]
        if not found:
            fail(
                f"no script {value!r} in repository {self.repository_id} at {self.catalogue['ref']}"
            )
        if len(found) > 1:
            listed = ", ".join(f"{item['path']} ({item['id']})" for item in found)
            fail(
                f"{len(found)} scripts are named {value!r} ({listed}): give a path or an id",
                exits.USAGE,
            )
        return str(found[0]["id"])


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Deployment name.")],
    repository: Annotated[
        str | None,
        name_option(names.REPOSITORY, "Repository: name, owner/name, URL or id."),
    ] = None,
    script: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PATH|ID[:ARGS]",
            help="Script: path, name or id; repeat in run order. PATH:arg1,arg2 adds arguments.",
        ),
    ] = None,
    host: Annotated[
        list[str] | None,
        name_option(names.HOST, "Host: name or id; repeat for several."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="Branch, tag or SHA (default branch otherwise).")
    ] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=VALUE environment variable.")] = None,
    secret: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE secret variable (masked in logs).")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Run later, at this ISO time with timezone.")
    ] = None,
    parallelism: Annotated[int, typer.Option(help="Hosts at once.")] = 20,
    batch_size: Annotated[int | None, typer.Option(help="Hosts per rolling batch.")] = None,
    stop_on_failure: Annotated[bool, typer.Option(help="Stop at the first failed host.")] = False,
    timeout: Annotated[int, typer.Option(help="Per-script timeout in seconds.")] = 3600,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the deployment; exit with its outcome.")
    ] = False,
    override_freeze: Annotated[
        str | None,
        typer.Option(
            "--override-freeze",
            metavar="REASON",
            help="Admins: start it although a freeze window is in force (the reason is audited).",
        ),
    ] = None,
) -> None:
    """Create a deployment; with --wait, follow it and exit with its outcome."""
    environment = parse_env(env or [], secret=False) + parse_env(secret or [], secret=True)
    with api_client() as api:
        repository_id = resolve(api, names.REPOSITORY, repository) if repository else None
        find_script = ScriptFinder(api, repository_id, ref)
        scripts = []
        for item in script or []:
            script_ref, _, args = item.partition(":")
            scripts.append(
                {"script_id": find_script(script_ref), "arguments": args.split(",") if args else []}
            )
        body: dict[str, Any] = {
            "name": name,
            "repository_id": repository_id,
            "ref": ref,
            "scripts": scripts,
            "host_ids": [resolve(api, names.HOST, value) for value in host or []],
            "environment": environment,
            "options": {
                "parallelism": parallelism,
                "batch_size": batch_size,
                "stop_on_failure": stop_on_failure,
                "script_timeout_seconds": timeout,
            },
        }
        if at:
            body.update(schedule="later", scheduled_time=at)
        if override_freeze is not None:
            body["freeze_override"] = {"reason": override_freeze}
        deployment = api.post("/deployments", json=body)
        announce(
            deployment,
            f"created deployment {deployment['id']} ({styled(deployment['status'])})",
            wait=wait,
        )
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))


# The log filters of `watch` and `logs`: the same as the grid and the download on the web.
HostOption = Annotated[
    str | None,
    name_option(names.HOST, "Only this host's lines (name or id).", "--host"),
]
ScriptOption = Annotated[
    str | None,
    typer.Option(
        "--script", metavar="NAME|ID", help="Only this script's lines (name, path or id)."
    ),
]
FailedOption = Annotated[
    bool, typer.Option("--failed", help="Only the lines of failed host/script pairs.")
]
GrepOption = Annotated[
    str | None,
    typer.Option(
        "--grep", metavar="PATTERN", help="Only lines containing PATTERN (case-insensitive)."
    ),
]
RegexOption = Annotated[
    bool, typer.Option("--regex", "-E", help="PATTERN is a regular expression.")
]
ColorOption = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        help="ANSI colours in the output (default: when stdout is a terminal and NO_COLOR is unset).",
    ),
]


@app.command("watch")
def watch(
    deployment_id: Annotated[str, typer.Argument(help="The deployment's id.")],
    host: HostOption = None,
    script: ScriptOption = None,
    failed: FailedOption = False,
    grep: GrepOption = None,
    regex: RegexOption = False,
    color: ColorOption = None,
) -> None:
    """Follow a deployment: the live log and its progress, until it ends; exit with its outcome.

    A dropped connection is resumed after the last line received (Last-Event-ID). With --failed
    the failed scripts' lines are printed when the run ends (a script is known to have failed
    only then).
    """
    filters = LogFilters(host=host, script=script, failed=failed, grep=grep, regex=regex)
    with api_client() as api:
        raise typer.Exit(follow(api, deployment_id, filters=filters, colour=use_colour(color)))


@app.command("logs")
def logs(
    deployment_id: Annotated[str, typer.Argument(help="The deployment's id.")],
    host: HostOption = None,
    script: ScriptOption = None,
    failed: FailedOption = False,
    grep: GrepOption = None,
    regex: RegexOption = False,
    color: ColorOption = None,
) -> None:
    """Print a deployment's stored log, streamed, with the filters of its page.

    With -o json: one JSON object per line (the download's JSON-lines fields)."""
    filters = LogFilters(host=host, script=script, failed=failed, grep=grep, regex=regex)
    with api_client() as api:
        print_download(api, deployment_id, filters, colour=use_colour(color))


def deployments_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("id", "name", "status", "created", "hosts"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"],
            item["name"],
            styled(item["status"]),
            item["created_at"][:19],
            str(len(item["host_ids"])),
        )
    return table


@app.command("list")
def list_deployments(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    repository: Annotated[
        str | None,
        name_option(names.REPOSITORY, "Only this repository's (name or id)."),
    ] = None,
    host: Annotated[
        str | None,
        name_option(names.HOST, "Only those that ran on this host (name or id)."),
    ] = None,
    template: Annotated[
        str | None,
        name_option(names.TEMPLATE, "Only this template's runs (name or id)."),
    ] = None,
    search: Annotated[str | None, typer.Option(help="Only those whose name contains this.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """The newest deployments."""
    with api_client() as api:
        page = api.get(
            "/deployments",
            limit=limit,
            status=status,
            repository_id=resolve(api, names.REPOSITORY, repository) if repository else None,
            host_id=resolve(api, names.HOST, host) if host else None,
            template_id=resolve(api, names.TEMPLATE, template) if template else None,
            search=search,
        )
    items: list[dict[str, Any]] = page["items"]
    emit(items, table=lambda: deployments_table(items))


def deployment_view(deployment: dict[str, Any], results: dict[str, Any]) -> Group:
    lines: list[Any] = [
        Text.from_markup(f"[bold]{deployment['name']}[/] {styled(deployment['status'])}")
    ]
    for key in (
        "id",
        "ref",
        "commit_sha",
        "template_id",
        "trigger",
        "created_at",
        "started_at",
        "completed_at",
        "error",
    ):
        if deployment.get(key):
            lines.append(Text(f"  {key}: {deployment[key]}"))
    launched_by = deployment.get("launched_by") or {}
    if launched_by:
        who = launched_by.get("name") or launched_by.get("id") or ""
        lines.append(Text(f"  launched by: {launched_by['kind']} {who}"))
    if deployment.get("parameters"):
        # Secret values come back as *** already.
        lines.append(Text(f"  parameters: {json.dumps(deployment['parameters'])}"))
    lines.append(results_table(results, only_failed=False))
    return Group(*lines)


@app.command("show")
def show(deployment_id: Annotated[str, typer.Argument(help="The deployment's id.")]) -> None:
    """One deployment with its per-host, per-script results.

    With -o json: ``{"deployment": {...}, "results": {...}}`` (the API's two answers)."""
    with api_client() as api:
        deployment = api.get(f"/deployments/{deployment_id}")
        results = all_results(api, deployment_id)
    emit(
        {"deployment": deployment, "results": results},
        table=lambda: deployment_view(deployment, results),
    )


@app.command("cancel")
def cancel(deployment_id: Annotated[str, typer.Argument(help="The deployment's id.")]) -> None:
    """Cancel a waiting or running deployment."""
    with api_client() as api:
        deployment = api.post(f"/deployments/{deployment_id}/cancel")
    emit(
        deployment,
        table=lambda: (
            f"deployment {deployment_id}: cancel requested ({styled(deployment['status'])})"
        ),
    )


@app.command("rerun")
def rerun(
    deployment_id: Annotated[str, typer.Argument(help="The deployment's id.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the new deployment; exit with its outcome.")
    ] = False,
) -> None:
    """Run a deployment again with the same inputs."""
    with api_client() as api:
        deployment = api.post(f"/deployments/{deployment_id}/rerun")
        announce(
            deployment,
            f"created deployment {deployment['id']} (re-run of {deployment_id})",
            wait=wait,
        )
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))
