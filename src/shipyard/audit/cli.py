"""``shipyard audit``: the audit trail: list, export, streams (SHIPYARD_URL, SHIPYARD_TOKEN)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(help="The audit trail: list, export, streams.", no_args_is_help=True)
streams_app = typer.Typer(
    help="Where new entries are streamed (syslog, webhook).", no_args_is_help=True
)
app.add_typer(streams_app, name="streams")
console = Console()
err_console = Console(stderr=True)

ActorOption = Annotated[str | None, typer.Option("--actor", help="Only this actor's (profile id).")]
ActionOption = Annotated[
    str | None, typer.Option("--action", help="An action (host.create) or a prefix (host.).")
]
ResourceOption = Annotated[str | None, typer.Option("--resource-type", help="e.g. host.")]
SinceOption = Annotated[str | None, typer.Option("--since", help="ISO 8601 time (inclusive).")]
UntilOption = Annotated[str | None, typer.Option("--until", help="ISO 8601 time (exclusive).")]


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def client() -> ApiClient:
    try:
        return ApiClient()
    except ApiError as exc:
        fail(str(exc))
        raise


def _filters(
    actor: str | None,
    action: str | None,
    resource_type: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    given = {
        "actor_id": actor,
        "action": action,
        "resource_type": resource_type,
        "since": since,
        "until": until,
    }
    return {key: value for key, value in given.items() if value is not None}


@app.command("list")
def list_entries(
    actor: ActorOption = None,
    action: ActionOption = None,
    resource_type: ResourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The tenant's audit entries, newest first (admins)."""
    with client() as api:
        try:
            page = api.get(
                "/audit", limit=limit, **_filters(actor, action, resource_type, since, until)
            )
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("at", "actor", "action", "resource", "outcome", "changes"):
        table.add_column(column)
    for item in page["items"]:
        resource = item["resource_type"] + (
            f" {item['resource_id']}" if item.get("resource_id") else ""
        )
        table.add_row(
            item["at"],
            item["actor"]["email"] or "",
            item["action"],
            resource,
            item["outcome"],
            ", ".join(sorted(item["changes"])),
        )
    console.print(table)


@app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    resource_type: ResourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export the entries (oldest first) as CSV or JSON lines."""
    if format not in ("csv", "jsonl"):
        fail("--format must be csv or jsonl")
    query = urlencode({"format": format, **_filters(actor, action, resource_type, since, until)})
    with client() as api:
        try:
            lines = api.stream_lines(f"/audit/export?{query}")
            if output is None:
                for line in lines:
                    sys.stdout.write(line + "\n")
            else:
                with output.open("w", encoding="utf-8", newline="") as file:
                    for line in lines:
                        file.write(line + "\n")
        except ApiError as exc:
            fail(str(exc))
    if output is not None:
        err_console.print(f"written to {output}")


@streams_app.command("list")
def list_streams() -> None:
    """The audit streams, with where each got and its last error."""
    with client() as api:
        try:
            streams = api.get("/audit/streams")
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "name", "type", "target", "enabled", "sent up to", "last error"):
        table.add_column(column)
    for item in streams:
        config = item["config"]
        target = config.get("url") or (
            f"{config.get('protocol')}://{config.get('host')}:{config.get('port')}"
        )
        table.add_row(
            item["id"],
            item["name"],
            item["type"],
            target,
            "yes" if item["enabled"] else "no",
            item.get("cursor_at") or "",
            item.get("last_error") or "",
        )
    console.print(table)


@streams_app.command("create")
def create_stream(
    name: Annotated[str, typer.Argument(help="A name for the stream.")],
    url: Annotated[
        str | None, typer.Option("--url", help="Webhook URL (a webhook stream).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Syslog host (a syslog stream).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Syslog port.")] = 514,
    protocol: Annotated[str, typer.Option("--protocol", help="udp or tcp.")] = "udp",
    app_name: Annotated[str, typer.Option("--app-name", help="RFC 5424 APP-NAME.")] = "shipyard",
) -> None:
    """Stream new entries to a webhook (--url) or syslog (--host); a webhook's signing secret
    is printed once."""
    if (url is None) == (host is None):
        fail("give either --url (webhook) or --host (syslog)")
    body: dict[str, Any]
    if url is not None:
        body = {"name": name, "type": "webhook", "config": {"url": url}}
    else:
        config = {"host": host, "port": port, "protocol": protocol, "app_name": app_name}
        body = {"name": name, "type": "syslog", "config": config}
    with client() as api:
        try:
            created = api.post("/audit/streams", json=body)
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"created stream {created['id']} ({created['name']})", highlight=False)
    if created.get("secret"):
        console.print("signing secret (shown once; X-Shipyard-Signature: sha256=HMAC):")
        sys.stdout.write(json.dumps({"secret": created["secret"]}) + "\n")


def _set_enabled(stream_id: str, enabled: bool) -> None:
    with client() as api:
        try:
            updated = api.patch(f"/audit/streams/{stream_id}", {"enabled": enabled})
        except ApiError as exc:
            fail(str(exc))
            return
    state = "enabled" if updated["enabled"] else "disabled"
    console.print(f"stream {updated['id']} ({updated['name']}): {state}", highlight=False)


@streams_app.command("enable")
def enable_stream(stream_id: Annotated[str, typer.Argument(help="The stream's id.")]) -> None:
    """Resume sending new entries to the stream (from where it stopped)."""
    _set_enabled(stream_id, True)


@streams_app.command("disable")
def disable_stream(stream_id: Annotated[str, typer.Argument(help="The stream's id.")]) -> None:
    """Stop sending entries to the stream (it is kept; enable resumes it)."""
    _set_enabled(stream_id, False)


@streams_app.command("delete")
def delete_stream(stream_id: Annotated[str, typer.Argument(help="The stream's id.")]) -> None:
    """Stop and remove a stream."""
    with client() as api:
        try:
            api.delete(f"/audit/streams/{stream_id}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"deleted stream {stream_id}")
