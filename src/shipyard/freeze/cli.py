"""``shipyard freeze-windows``: list, show, create, update, delete, active.

Windows are named by name or id, their templates and host groups too; ``-o json`` prints the
API's objects."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import ApiTyper, api_client, complete, fail, name_option, resolve
from shipyard.client.output import emit

app = ApiTyper(help="Freeze windows: periods closed to deployments.", no_args_is_help=True)

FREEZE_WINDOW = names.Kind("freeze window", "/freeze-windows")

WindowArgument = Annotated[
    str,
    typer.Argument(help="The window (name or ID).", autocompletion=complete(FREEZE_WINDOW)),
]


def _when(item: dict[str, Any]) -> str:
    if item["kind"] == "fixed":
        return f"{item['starts_at']} → {item['ends_at']}"
    return f"{item['cron']} ({item['cron_description']}) for {item['duration_minutes']} min"


def _ids(api: ApiClient, kind: names.Kind, refs: list[str] | None) -> list[str] | None:
    return None if refs is None else [resolve(api, kind, ref) for ref in refs]


def windows_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("id", "name", "kind", "when", "zone", "scope", "enabled", "now"):
        table.add_column(column)
    for item in items:
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
    return table


@app.command("list")
def list_windows() -> None:
    """The freeze windows: when, zone, scope, and the occurrence in force now."""
    with api_client() as api:
        items = list(api.paginate("/freeze-windows", limit=200))
    emit(items, table=lambda: windows_table(items))


@app.command("show")
def show(window: WindowArgument) -> None:
    """One freeze window, with its occurrence in force and the next ones."""
    with api_client() as api:
        found = api.get(f"/freeze-windows/{resolve(api, FREEZE_WINDOW, window)}")
    emit(found, table=lambda: windows_table([found]))


TemplateOption = Annotated[
    list[str] | None,
    name_option(
        names.TEMPLATE,
        "Only runs of this template (name or ID; repeat).",
        "--template",
        metavar=None,
    ),
]
GroupOption = Annotated[
    list[str] | None,
    name_option(
        names.GROUP,
        "Only runs on hosts of this group (name or ID; repeat).",
        "--group",
        metavar=None,
    ),
]


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
    template: TemplateOption = None,
    group: GroupOption = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it disabled.")] = False,
) -> None:
    """A recurring window (--cron and --duration) or a fixed one (--starts-at, --ends-at)."""
    with api_client() as api:
        body: dict[str, Any] = {
            "name": name,
            "kind": "recurring" if cron is not None else "fixed",
            "cron": cron,
            "duration_minutes": duration,
            "timezone": timezone,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "template_ids": _ids(api, names.TEMPLATE, template) or [],
            "group_ids": _ids(api, names.GROUP, group) or [],
            "description": description,
            "enabled": not disabled,
        }
        created = api.post("/freeze-windows", body)
    following = created.get("next") or []
    emit(
        created,
        table=lambda: Text(
            f"created freeze window {created['id']} ({created['name']})"
            + (f"; next from {following[0]['starts_at']}" if following else "")
        ),
    )


@app.command("update")
def update(
    window: WindowArgument,
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
        name_option(
            names.TEMPLATE,
            "Only runs of these templates (names or IDs; replaces the list).",
            "--template",
            metavar=None,
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        name_option(
            names.GROUP,
            "Only hosts of these groups (names or IDs; replaces the list).",
            "--group",
            metavar=None,
        ),
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
    with api_client() as api:
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
                "template_ids": _ids(api, names.TEMPLATE, template),
                "group_ids": _ids(api, names.GROUP, group),
            }.items()
            if value is not None
        }
        if every_run:
            body["template_ids"], body["group_ids"] = [], []
        if not body:
            fail("nothing to change: give at least one option", exits.USAGE)
        changed = api.patch(f"/freeze-windows/{resolve(api, FREEZE_WINDOW, window)}", body)
    emit(
        changed,
        table=lambda: Text(
            f"updated freeze window {changed['name']}: {_when(changed)}, {changed['timezone']}"
            + ("" if changed["enabled"] else " (disabled)")
        ),
    )


@app.command("delete")
def delete(window: WindowArgument) -> None:
    """Delete a freeze window. -o json: {"id", "name", "deleted": true}."""
    with api_client() as api:
        found = api.get(f"/freeze-windows/{resolve(api, FREEZE_WINDOW, window)}")
        api.delete(f"/freeze-windows/{found['id']}")
    emit(
        {"id": found["id"], "name": found["name"], "deleted": True},
        table=lambda: Text(f"deleted freeze window {found['name']}"),
    )


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
    with api_client() as api:
        shown = api.get("/freeze-windows/active", **params)

    def table() -> Text:
        lines = [] if shown["active"] else ["no freeze window is in force"]
        lines += [f"in force: {item['name']} until {item['ends_at']}" for item in shown["active"]]
        lines += [
            f"next: {item['name']} from {item['starts_at']} until {item['ends_at']}"
            for item in shown["upcoming"]
        ]
        return Text("\n".join(lines))

    emit(shown, table=table)
