"""``shipyard schedules``: list, create, pause, resume, delete, next.

Secret parameter values never travel on the command line: they come from ``--param-stdin
NAME`` or a prompt (as for ``shipyard run``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from shipyard.client import ApiError
from shipyard.deployments.cli import client, console, fail
from shipyard.templates.cli import ParamOption, StdinOption, find, launch_values

app = typer.Typer(
    help="Schedules: templates run on a cron line in a time zone (SHIPYARD_URL, SHIPYARD_TOKEN).",
    no_args_is_help=True,
)


def _next(item: dict[str, Any]) -> str:
    if not item["enabled"]:
        return "paused"
    return item["next_fire_local"] or "(ended)"


def _verdict(item: dict[str, Any]) -> str:
    last = item.get("last_fire")
    if not last:
        return ""
    return f"{last['verdict']}" + (f": {last['reason']}" if last.get("reason") else "")


@app.command("list")
def list_schedules(
    template: Annotated[
        str | None, typer.Option("--template", help="Only this template's (id or name).")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """The schedules, newest first: the cron line in words, the zone, the next run, last fire."""
    with client() as api:
        try:
            params: dict[str, Any] = {"limit": limit}
            if template is not None:
                params["template_id"] = find(api, template)["id"]
            page = api.get("/schedules", **params)
        except ApiError as exc:
            fail(str(exc))
            return
    table = Table()
    for column in ("id", "template", "cron", "when", "zone", "next run", "last fire"):
        table.add_column(column)
    for item in page["items"]:
        table.add_row(
            item["id"],
            item["template_id"],
            item["cron"],
            item["cron_description"],
            item["timezone"],
            _next(item),
            _verdict(item),
        )
    console.print(table)


@app.command("create")
def create(
    template: Annotated[str, typer.Argument(help="The template (id or name).")],
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
    """Schedule a template; prints the schedule and its next fire times."""
    with client() as api:
        try:
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
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(
        f"[bold]schedule[/] {created['id']}: {created['cron_description']} ({created['timezone']})",
        highlight=False,
    )
    _print_times(upcoming)


def _print_times(upcoming: dict[str, Any]) -> None:
    for item in upcoming["times"]:
        console.print(f"  {item['at']}  ({item['utc']} UTC)", highlight=False)


@app.command("next")
def next_times(
    schedule: str,
    count: Annotated[int, typer.Option(help="How many fire times.")] = 10,
) -> None:
    """The next fire times, in the schedule's zone and in UTC."""
    with client() as api:
        try:
            upcoming = api.get(f"/schedules/{schedule}/next", count=count)
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(
        f"{upcoming['cron']}: {upcoming['cron_description']} ({upcoming['timezone']})",
        highlight=False,
    )
    _print_times(upcoming)


def _action(schedule: str, action: str) -> None:
    with client() as api:
        try:
            item = api.post(f"/schedules/{schedule}/{action}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"{item['id']}: {action}d; next run: {_next(item)}", highlight=False)


@app.command("pause")
def pause(schedule: str) -> None:
    """Stop firing (nothing is recorded as missed while paused)."""
    _action(schedule, "pause")


@app.command("resume")
def resume(schedule: str) -> None:
    """Fire again from the next time after now."""
    _action(schedule, "resume")


@app.command("delete")
def delete(schedule: str) -> None:
    """Delete the schedule and its fire history (its runs stay)."""
    with client() as api:
        try:
            api.delete(f"/schedules/{schedule}")
        except ApiError as exc:
            fail(str(exc))
            return
    console.print(f"{schedule}: deleted", highlight=False)
