"""``shipyard deploy``: create, follow, list, show, cancel and re-run deployments over the REST API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(
    help="Deployments (talks to SHIPYARD_URL with SHIPYARD_TOKEN).", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)
FINAL = {"success", "failed", "partial", "cancelled", "interrupted"}
STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "partial": "yellow",
    "cancelled": "magenta",
    "interrupted": "yellow",
    "in_progress": "cyan",
    "pending": "white",
    "scheduled": "blue",
    "pending_approval": "yellow",
    "running": "cyan",
    "skipped": "dim",
}
EXIT_CODES = {"success": 0, "partial": 2, "failed": 1, "cancelled": 3, "interrupted": 4}


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def client() -> ApiClient:
    try:
        return ApiClient()
    except ApiError as exc:
        fail(str(exc))
        raise


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def parse_env(values: list[str], *, secret: bool) -> list[dict[str, Any]]:
    variables = []
    for value in values:
        name, sep, content = value.partition("=")
        if not sep:
            fail(f"--{'secret' if secret else 'env'} takes NAME=VALUE, got {value!r}")
        variables.append({"name": name, "value": content, "secret": secret})
    return variables


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Deployment name.")],
    repository: Annotated[str | None, typer.Option(help="Repository id.")] = None,
    script: Annotated[
        list[str] | None,
        typer.Option(help="Script id; repeat in run order. ID:arg1,arg2 adds arguments."),
    ] = None,
    host: Annotated[list[str] | None, typer.Option(help="Host id; repeat for several.")] = None,
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
        bool, typer.Option("--wait", help="Follow the deployment until it ends.")
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
    scripts = []
    for item in script or []:
        script_id, _, args = item.partition(":")
        scripts.append({"script_id": script_id, "arguments": args.split(",") if args else []})
    body: dict[str, Any] = {
        "name": name,
        "repository_id": repository,
        "ref": ref,
        "scripts": scripts,
        "host_ids": host or [],
        "environment": parse_env(env or [], secret=False) + parse_env(secret or [], secret=True),
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
    with client() as api:
        try:
            deployment = api.post("/deployments", json=body)
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(f"created deployment {deployment['id']} ({styled(deployment['status'])})")
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))


@app.command("watch")
def watch(deployment_id: str) -> None:
    """Follow a deployment: per-host progress and the live log, until it ends."""
    with client() as api:
        raise typer.Exit(follow(api, deployment_id))


def host_table(api: ApiClient, deployment_id: str) -> Table:
    scripts = api.get(f"/deployments/{deployment_id}/scripts")
    table = Table(title="hosts", expand=False)
    table.add_column("host")
    table.add_column("script")
    table.add_column("status")
    table.add_column("exit")
    for row in scripts:
        table.add_row(
            (row["host_id"] or "-")[:8],
            row["name"] or "-",
            styled(row["status"]),
            "" if row["exit_code"] is None else str(row["exit_code"]),
        )
    return table


def follow(api: ApiClient, deployment_id: str) -> int:
    """Print the live log, then the per-host table; return the exit code for the final status."""
    status = "unknown"
    try:
        event = None
        for line in api.stream_lines(f"/deployments/{deployment_id}/logs/stream"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "log":
                entry = json.loads(line[6:])
                stamp = datetime.fromisoformat(entry["timestamp"]).strftime("%H:%M:%S")
                colour = {"ERROR": "red", "WARNING": "yellow"}.get(entry["level"], "")
                text = entry["message"].replace("[", r"\[")
                console.print(
                    f"[dim]{stamp}[/] " + (f"[{colour}]{text}[/]" if colour else text),
                    highlight=False,
                )
            elif line.startswith("data: ") and event == "end":
                status = json.loads(line[6:])["status"]
                break
        console.print(host_table(api, deployment_id))
    except ApiError as exc:
        fail(str(exc))
    console.print(f"deployment {deployment_id}: {styled(status)}")
    return EXIT_CODES.get(status, 1)


@app.command("list")
def list_deployments(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 20,
) -> None:
    """The newest deployments."""
    with client() as api:
        try:
            page = api.get("/deployments", limit=limit, status=status)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "name", "status", "created", "hosts"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            item["id"],
            item["name"],
            styled(item["status"]),
            item["created_at"][:19],
            str(len(item["host_ids"])),
        )
    console.print(table)


@app.command("show")
def show(deployment_id: str) -> None:
    """One deployment with its per-host, per-script results."""
    with client() as api:
        try:
            deployment = api.get(f"/deployments/{deployment_id}")
            console.print(f"[bold]{deployment['name']}[/] {styled(deployment['status'])}")
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
                    console.print(f"  {key}: {deployment[key]}", highlight=False)
            launched_by = deployment.get("launched_by") or {}
            if launched_by:
                who = launched_by.get("name") or launched_by.get("id") or ""
                console.print(f"  launched by: {launched_by['kind']} {who}", highlight=False)
            if deployment.get("parameters"):
                # Secret values come back as *** already.
                console.print(
                    f"  parameters: {json.dumps(deployment['parameters'])}", highlight=False
                )
            console.print(host_table(api, deployment_id))
        except ApiError as exc:
            fail(str(exc))


@app.command("cancel")
def cancel(deployment_id: str) -> None:
    """Cancel a waiting or running deployment."""
    with client() as api:
        try:
            deployment = api.post(f"/deployments/{deployment_id}/cancel")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"deployment {deployment_id}: cancel requested ({styled(deployment['status'])})")


@app.command("rerun")
def rerun(
    deployment_id: str,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the new deployment.")] = False,
) -> None:
    """Run a deployment again with the same inputs."""
    with client() as api:
        try:
            deployment = api.post(f"/deployments/{deployment_id}/rerun")
        except ApiError as exc:
            fail(str(exc))
            return
        console.print(f"created deployment {deployment['id']} (re-run of {deployment_id})")
        if wait:
            raise typer.Exit(follow(api, deployment["id"]))
