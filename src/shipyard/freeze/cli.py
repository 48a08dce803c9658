"""``shipyard freeze-windows``: list, create, update, delete, active (SHIPYARD_URL,
SHIPYARD_TOKEN)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(
    help="Freeze windows: periods closed to deployments (SHIPYARD_URL, SHIPYARD_TOKEN).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        with ApiClient() as api:
            return api.request(method, path, **kwargs)
    except ApiError as exc:
        _fail(str(exc))


def _when(item: dict[str, Any]) -> str:
    if item["kind"] == "fixed":
        return f"{item['starts_at']} → {item['ends_at']}"
    return f"{item['cron']} ({item['cron_description']}) for {item['duration_minutes']} min"


def _find(name_or_id: str) -> dict[str, Any]:
    page = _call("GET", "/freeze-windows", params={"limit": 200})
    for item in page["items"]:
        if name_or_id in (item["id"], item["name"]):
            found: dict[str, Any] = item
            return found
    _fail(f"no freeze window {name_or_id!r}")
    raise AssertionError  # unreachable: _fail exits


@app.command("list")
def list_windows() -> None:
    """The freeze windows: when, zone, scope, and the occurrence in force now."""
    page = _call("GET", "/freeze-windows", params={"limit": 200})
    table = Table()
    for column in ("id", "name", "kind", "when", "zone", "scope", "enabled", "now"):
        table.add_column(column)
    for item in page["items"]:
        scope = []
        if item["template_ids"]:
            scope.append(f"{len(item['template_ids'])} template(s)")
        if item["group_ids"]:
            scope.append(f"{len(item['group_ids'])} group(s)")
        active = item.get("active")
        table.add_row(
            item["id"],
            item["name"],
            item["kind"],
            _when(item),
            item["timezone"],
            ", ".join(scope) or "every run",
            "yes" if item["enabled"] else "no",
            f"in force until {active['ends_at']}" if active else "",
        )
    console.print(table)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The window's name (unique in the tenant).")],
    cron: Annotated[
        str | None, typer.Option("--cron", help="recurring: when it starts (five fields).")
    ] = None,
    duration: Annotated[
        int | None, typer.Option("--duration", help="recurring: minutes each occurrence lasts.")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone.")] = "UTC",
    starts_at: Annotated[
        str | None,
        typer.Option("--starts-at", help="fixed: the start (ISO 8601 with an offset)."),
    ] = None,
    ends_at: Annotated[
        str | None, typer.Option("--ends-at", help="fixed: the end (ISO 8601 with an offset).")
    ] = None,
    template: Annotated[
        list[str] | None, typer.Option("--template", help="Only runs of this template (id).")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Only runs on hosts of this group (id).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it disabled.")] = False,
) -> None:
    """A recurring window (--cron and --duration) or a fixed one (--starts-at, --ends-at)."""
    body: dict[str, Any] = {
        "name": name,
        "kind": "recurring" if cron is not None else "fixed",
        "cron": cron,
        "duration_minutes": duration,
        "timezone": timezone,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "template_ids": template or [],
        "group_ids": group or [],
        "description": description,
        "enabled": not disabled,
    }
    created = _call("POST", "/freeze-windows", json=body)
    following = created.get("next") or []
    console.print(
        f"created freeze window {created['id']} ({created['name']})"
        + (f"; next from {following[0]['starts_at']}" if following else ""),
        highlight=False,
    )


@app.command("update")
def update(
    window: Annotated[str, typer.Argument(help="The window (id or name).")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="recurring: when it starts (five fields).")
    ] = None,
    duration: Annotated[
        int | None, typer.Option("--duration", help="recurring: minutes each occurrence lasts.")
    ] = None,
    timezone: Annotated[str | None, typer.Option("--timezone", help="IANA zone.")] = None,
    starts_at: Annotated[
        str | None, typer.Option("--starts-at", help="The start (ISO 8601 with an offset).")
    ] = None,
    ends_at: Annotated[
        str | None, typer.Option("--ends-at", help="The end (ISO 8601 with an offset).")
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option("--template", help="Only runs of these templates (ids; replaces the list)."),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Only hosts of these groups (ids; replaces the list)."),
    ] = None,
    every_run: Annotated[
        bool, typer.Option("--every-run", help="Clear the template and group lists.")
    ] = False,
    description: Annotated[str | None, typer.Option("--description")] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Turn the window on or off.")
    ] = None,
) -> None:
    """Change the options given; the others stay as they are."""
    found = _find(window)
    body: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "cron": cron,
            "duration_minutes": duration,
            "timezone": timezone,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "description": description,
            "enabled": enabled,
            "template_ids": template,
            "group_ids": group,
        }.items()
        if value is not None
    }
    if every_run:
        body["template_ids"], body["group_ids"] = [], []
    if not body:
        _fail("nothing to change: give at least one option")
    changed = _call("PATCH", f"/freeze-windows/{found['id']}", json=body)
    console.print(
        f"updated freeze window {changed['name']}: {_when(changed)}, {changed['timezone']}"
        + ("" if changed["enabled"] else " (disabled)"),
        highlight=False,
    )


@app.command("delete")
def delete(window: Annotated[str, typer.Argument(help="The window (id or name).")]) -> None:
    """Delete a freeze window."""
    found = _find(window)
    _call("DELETE", f"/freeze-windows/{found['id']}")
    console.print(f"deleted freeze window {found['name']}", highlight=False)


@app.command("active")
def active(
    at: Annotated[
        str | None, typer.Option("--at", help="At this moment (ISO 8601) instead of now.")
    ] = None,
    count: Annotated[int, typer.Option("--count", help="Upcoming occurrences shown.")] = 5,
) -> None:
    """The windows in force now (or --at), and the next occurrences."""
    params: dict[str, Any] = {"count": count}
    if at is not None:
        params["active_at"] = at
    shown = _call("GET", "/freeze-windows/active", params=params)
    if not shown["active"]:
        console.print("no freeze window is in force")
    for item in shown["active"]:
        console.print(
            f"in force: {item['name']} until {item['ends_at']}", highlight=False, markup=False
        )
    for item in shown["upcoming"]:
        console.print(
            f"next: {item['name']} from {item['starts_at']} until {item['ends_at']}",
            highlight=False,
            markup=False,
        )
