"""``shipyard schedules``: list, show, create, next, pause, resume, delete.

A schedule is named by its id, or by its name when it has one; its template by name or id.
Secret parameter values never travel on the command line: they come from ``--param-stdin
NAME`` or a prompt (as for ``shipyard run``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, names
from shipyard.client.commands import ApiTyper, api_client, complete, name_option, resolve
from shipyard.client.output import emit
from shipyard.templates.cli import ParamOption, StdinOption, TemplateArgument, find, launch_values

app = ApiTyper(help="Schedules: templates run on a cron line in a time zone.", no_args_is_help=True)
ScheduleArgument = Annotated[
    str,
    typer.Argument(
        metavar="SCHEDULE",
        help="Schedule id (or its name, if it has one).",
        autocompletion=complete(names.SCHEDULE),
    ),
]


def _next(item: dict[str, Any]) -> str:
    if not item["enabled"]:
        return "paused"
    return item["next_fire_local"] or "(ended)"


def _verdict(item: dict[str, Any]) -> str:
    last = item.get("last_fire")
    if not last:
        return ""
    return f"{last['verdict']}" + (f": {last['reason']}" if last.get("reason") else "")


def schedules_table(items: list[dict[str, Any]]) -> Table:
    table = Table()
    for column in ("id", "template", "cron", "when", "zone", "next run", "last fire"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"],
            item["template_id"],
            item["cron"],
            item["cron_description"],
            item["timezone"],
            _next(item),
            _verdict(item),
        )
    return table


@app.command("list")
def list_schedules(
    template: Annotated[
        str | None,
        name_option(names.TEMPLATE, "Only this template's (name or id).", "--template"),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The schedules, newest first: the cron line in words, the zone, the next run, last fire."""
    with api_client() as api:
        template_id = resolve(api, names.TEMPLATE, template) if template is not None else None
        page = api.get("/schedules", limit=limit, template_id=template_id)
    items: list[dict[str, Any]] = page["items"]
    emit(items, table=lambda: schedules_table(items))


def times_view(heading: str, upcoming: dict[str, Any]) -> Group:
    lines = [Text.from_markup(heading)]
    lines.extend(Text(f"  {item['at']}  ({item['utc']} UTC)") for item in upcoming["times"])
    return Group(*lines)


@app.command("create")
def create(
    template: TemplateArgument,
    cron: Annotated[str, typer.Option("--cron", help="Five fields or @hourly/@daily/...")],
    timezone: Annotated[str, typer.Option("--timezone", help="IANA zone.")] = "UTC",
    param: ParamOption = None,
    param_stdin: StdinOption = None,
    overlap: Annotated[
        str, typer.Option("--overlap", help="Previous run still going: skip, queue or allow.")
    ] = "skip",
    missed: Annotated[
        str, typer.Option("--missed", help="Fires missed while down: skip or run_once.")
    ] = "skip",
    starts_at: Annotated[
        str | None, typer.Option("--starts-at", help="ISO 8601 with an offset.")
    ] = None,
    ends_at: Annotated[
        str | None, typer.Option("--ends-at", help="ISO 8601 with an offset.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Save it paused.")] = False,
) -> None:
    """Schedule a template; prints the schedule and its next fire times.

    With -o json: the schedule as the API answered (its ``next_fire_at`` included)."""
    with api_client() as api:
        found = find(api, template)
        values = launch_values(found, param or [], param_stdin or [])
        body: dict[str, Any] = {
            "cron": cron,
            "timezone": timezone,
            "parameters": values,
            "overlap_policy": overlap,
            "missed_policy": missed,
            "enabled": not paused,
        }
        for key, value in (("starts_at", starts_at), ("ends_at", ends_at), ("name", name)):
            if value is not None:
                body[key] = value
        created = api.post(f"/templates/{found['id']}/schedules", body)
        upcoming = api.get(f"/schedules/{created['id']}/next", count=5)
    emit(
        created,
        table=lambda: times_view(
            f"[bold]schedule[/] {created['id']}: {created['cron_description']} "
            f"({created['timezone']})",
            upcoming,
        ),
    )


def find_schedule(api: ApiClient, schedule: str) -> str:
    return resolve(api, names.SCHEDULE, schedule)


@app.command("show")
def show(schedule: ScheduleArgument) -> None:
    """One schedule: its template, cron line, zone, policies, next run and last fire."""
    with api_client() as api:
        item = api.get(f"/schedules/{find_schedule(api, schedule)}")
    emit(item)


@app.command("next")
def next_times(
    schedule: ScheduleArgument,
    count: Annotated[int, typer.Option(help="How many fire times.")] = 10,
) -> None:
    """The next fire times, in the schedule's zone and in UTC."""
    with api_client() as api:
        upcoming = api.get(f"/schedules/{find_schedule(api, schedule)}/next", count=count)
    emit(
        upcoming,
        table=lambda: times_view(
            f"{upcoming['cron']}: {upcoming['cron_description']} ({upcoming['timezone']})",
            upcoming,
        ),
    )


def _action(schedule: str, action: str) -> None:
    with api_client() as api:
        item = api.post(f"/schedules/{find_schedule(api, schedule)}/{action}")
    emit(item, table=lambda: f"{item['id']}: {action}d; next run: {_next(item)}")


@app.command("pause")
def pause(schedule: ScheduleArgument) -> None:
    """Stop firing (nothing is recorded as missed while paused)."""
    _action(schedule, "pause")


@app.command("resume")
def resume(schedule: ScheduleArgument) -> None:
    """Fire again from the next time after now."""
    _action(schedule, "resume")


@app.command("delete")
def delete(schedule: ScheduleArgument) -> None:
    """Delete the schedule and its fire history (its runs stay).

    With -o json: the deleted schedule."""
    with api_client() as api:
        schedule_id = find_schedule(api, schedule)
        item = api.get(f"/schedules/{schedule_id}")
        api.delete(f"/schedules/{schedule_id}")
    emit(item, table=lambda: f"{schedule}: deleted")
