"""``shipyard logs retention``: the tenant's log retention policy (SHIPYARD_URL, SHIPYARD_TOKEN)."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from shipyard.client import ApiClient, ApiError

app = typer.Typer(help="Deployment logs: retention policy and size.", no_args_is_help=True)
retention_app = typer.Typer(
    help="How long finished runs' logs are kept (admins).", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _request(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        with ApiClient() as api:
            answer: dict[str, Any] = api.request(method, "/logs/retention", json=body)
    except ApiError as exc:
        fail(str(exc))
    return answer


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _show(policy: dict[str, Any]) -> None:
    days, lines = policy["days"], policy["lines"]
    console.print(f"days:  {days if days is not None else 'keep'}", highlight=False)
    console.print(f"lines: {lines if lines is not None else 'keep'}", highlight=False)
    size = policy["size"]
    console.print(
        f"size:  {size['rows']} lines, about {human_bytes(size['bytes'])}", highlight=False
    )


@retention_app.command("show")
def show() -> None:
    """The policy and the size of the tenant's log."""
    _show(_request("GET"))


@retention_app.command("set")
def set_policy(
    days: Annotated[
        int | None,
        typer.Option("--days", help="Delete a finished run's log N days after it ended."),
    ] = None,
    lines: Annotated[
        int | None, typer.Option("--lines", help="Keep a finished run's newest N lines.")
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Clear the policy: keep every log.")] = False,
) -> None:
    """Replace the policy (an option left out: no limit of that kind)."""
    if keep and (days is not None or lines is not None):
        fail("--keep clears the policy: give it alone, or --days/--lines without it")
    if not keep and days is None and lines is None:
        fail("give --days N and/or --lines N (or --keep to keep every log)")
    _show(_request("PUT", {"days": days, "lines": lines}))
