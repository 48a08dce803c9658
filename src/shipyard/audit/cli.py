"""``shipyard audit``: the audit trail: list, show, export, streams.

``export`` writes the export file's own format (``--format csv|jsonl``) to stdout or to
``--file``; the global ``-o`` shapes only its summary when it writes a file. Streams are named
by name or id.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import (
    ApiTyper,
    api_client,
    fail,
    name_argument,
    name_option,
    resolve,
)
from shipyard.client.output import emit

app = ApiTyper(help="The audit trail: list, export, streams.", no_args_is_help=True)
streams_app = ApiTyper(
    help="Where new entries are streamed (syslog, webhook).", no_args_is_help=True
)
retention_app = ApiTyper(help="How long entries are kept.", no_args_is_help=True)
app.add_typer(streams_app, name="streams")
app.add_typer(retention_app, name="retention")

ActorOption = Annotated[
    str | None,
    name_option(
        names.MEMBER, "Only this member's entries (e-mail or id).", "--actor", metavar=None
    ),
]
ActionOption = Annotated[
    str | None, typer.Option("--action", help="An action (host.create) or a prefix (host.).")
]
ResourceOption = Annotated[str | None, typer.Option("--resource-type", help="e.g. host.")]
SinceOption = Annotated[str | None, typer.Option("--since", help="ISO 8601 time (inclusive).")]
UntilOption = Annotated[str | None, typer.Option("--until", help="ISO 8601 time (exclusive).")]
StreamArgument = Annotated[
    str,
    name_argument(names.AUDIT_STREAM, "The stream (name or id)."),
]


def _filters(
    api: ApiClient,
    actor: str | None,
    action: str | None,
    resource_type: str | None,
    since: str | None,
    until: str | None,
) -> dict[str, Any]:
    given = {
        "actor_id": resolve(api, names.MEMBER, actor) if actor is not None else None,
        "action": action,
        "resource_type": resource_type,
        "since": since,
        "until": until,
    }
    return {key: value for key, value in given.items() if value is not None}


def _entries_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("at", "actor", "action", "resource", "outcome", "changes"):
        table.add_column(column)
    for item in items:
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
    return table


@app.command("list")
def list_entries(
    actor: ActorOption = None,
    action: ActionOption = None,
    resource_type: ResourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="The next page: a previous page's next_cursor.")
    ] = None,
) -> None:
    """The tenant's audit entries, newest first (admins)."""
    with api_client() as api:
        page = api.get(
            "/audit",
            limit=limit,
            cursor=cursor,
            **_filters(api, actor, action, resource_type, since, until),
        )
    emit(page, table=lambda: _entries_table(page["items"]))


@app.command("show")
def show_entry(entry_id: Annotated[str, typer.Argument(help="The entry's id.")]) -> None:
    """One audit entry with its changes and details."""
    with api_client() as api:
        entry = api.get(f"/audit/entries/{entry_id}")
    emit(entry)


@app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "jsonl",
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="File to write (default: stdout).")
    ] = None,
    actor: ActorOption = None,
    action: ActionOption = None,
    resource_type: ResourceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Export the entries (oldest first) as CSV or JSON lines, to stdout or --file (then a
    summary is printed, shaped by -o)."""
    if format not in ("csv", "jsonl"):
        fail("--format must be csv or jsonl", exits.USAGE)
    written = 0
    with api_client() as api:
        filters = _filters(api, actor, action, resource_type, since, until)
        query = urlencode({"format": format, **filters})
        lines = api.stream_lines(f"/audit/export?{query}")
        if file is None:
            for line in lines:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        try:
            with file.open("w", encoding="utf-8", newline="") as handle:
                for line in lines:
                    handle.write(line + "\n")
                    written += 1
        except OSError as exc:
            fail(f"cannot write {file}: {exc.strerror or type(exc).__name__}")
    emit(
        {"file": str(file), "format": format, "lines": written},
        table=lambda: escape(f"written to {file} ({written} lines)"),
    )


# --- retention ---------------------------------------------------------------------------------


def _retention_text(current: dict[str, Any]) -> str:
    source = "this tenant's" if current["retention_days"] is not None else "the default"
    return (
        f"entries are kept {current['effective_days']} days "
        f"({source}; default {current['default_days']})"
    )


@retention_app.command("show")
def show_retention() -> None:
    """The tenant's retention period, or the installation's default."""
    with api_client() as api:
        current = api.get("/audit/settings")
    emit(current, table=lambda: _retention_text(current))


@retention_app.command("set")
def set_retention(
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Keep entries this many days.")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Use the installation's default period.")
    ] = False,
) -> None:
    """Set how long this tenant's entries are kept (--days N, or --default)."""
    if (days is None) == (not default):
        fail("give --days N or --default", exits.USAGE)
    with api_client() as api:
        updated = api.request("PUT", "/audit/settings", json={"retention_days": days})
    emit(updated, table=lambda: _retention_text(updated))


# --- streams -----------------------------------------------------------------------------------


def _target(stream: dict[str, Any]) -> str:
    config = stream["config"]
    return str(
        config.get("url") or f"{config.get('protocol')}://{config.get('host')}:{config.get('port')}"
    )


@streams_app.command("list")
def list_streams() -> None:
    """The audit streams, with where each got and its last error."""
    with api_client() as api:
        streams = api.get("/audit/streams")

    def table() -> Table:
        rendered = Table()
        for column in ("id", "name", "type", "target", "enabled", "sent up to", "last error"):
            rendered.add_column(column)
        for item in streams:
            rendered.add_row(
                item["id"],
                item["name"],
                item["type"],
                _target(item),
                "yes" if item["enabled"] else "no",
                item.get("cursor_at") or "",
                item.get("last_error") or "",
            )
        return rendered

    emit(streams, table=table)


@streams_app.command("show")
def show_stream(stream: StreamArgument) -> None:
    """One stream: where it sends, how far it got, its last error (never its secret)."""
    with api_client() as api:
        found = api.get(f"/audit/streams/{resolve(api, names.AUDIT_STREAM, stream)}")
    emit(found)


@streams_app.command("create")
def create_stream(
    name: Annotated[str, typer.Argument(help="A name for the stream.")],
    url: Annotated[
        str | None, typer.Option("--webhook-url", help="Webhook URL (a webhook stream).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Syslog host (a syslog stream).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Syslog port.")] = 514,
    protocol: Annotated[str, typer.Option("--protocol", help="udp or tcp.")] = "udp",
    app_name: Annotated[str, typer.Option("--app-name", help="RFC 5424 APP-NAME.")] = "shipyard",
) -> None:
    """Stream new entries to a webhook (--webhook-url) or syslog (--host); a webhook's signing secret
    is printed once."""
    if (url is None) == (host is None):
        fail("give either --webhook-url (webhook) or --host (syslog)", exits.USAGE)
    body: dict[str, Any]
    if url is not None:
        body = {"name": name, "type": "webhook", "config": {"url": url}}
    else:
        config = {"host": host, "port": port, "protocol": protocol, "app_name": app_name}
        body = {"name": name, "type": "syslog", "config": config}
    with api_client() as api:
        created = api.post("/audit/streams", json=body)

    def table() -> str:
        lines = [f"created stream {created['id']} ({created['name']})"]
        if created.get("secret"):
            lines.append("signing secret (shown once; X-Shipyard-Signature: sha256=HMAC):")
            lines.append(json.dumps({"secret": created["secret"]}))
        return escape("\n".join(lines))

    emit(created, table=table)


def _set_enabled(stream: str, enabled: bool) -> None:
    with api_client() as api:
        stream_id = resolve(api, names.AUDIT_STREAM, stream)
        updated = api.patch(f"/audit/streams/{stream_id}", {"enabled": enabled})
    state = "enabled" if updated["enabled"] else "disabled"
    emit(updated, table=lambda: escape(f"stream {updated['id']} ({updated['name']}): {state}"))


@streams_app.command("enable")
def enable_stream(stream: StreamArgument) -> None:
    """Resume sending new entries to the stream (from where it stopped)."""
    _set_enabled(stream, True)


@streams_app.command("disable")
def disable_stream(stream: StreamArgument) -> None:
    """Stop sending entries to the stream (it is kept; enable resumes it)."""
    _set_enabled(stream, False)


@streams_app.command("delete")
def delete_stream(stream: StreamArgument) -> None:
    """Stop and remove a stream."""
    with api_client() as api:
        stream_id = resolve(api, names.AUDIT_STREAM, stream)
        api.delete(f"/audit/streams/{stream_id}")
    emit({"id": stream_id, "deleted": True}, table=lambda: f"deleted stream {stream_id}")
