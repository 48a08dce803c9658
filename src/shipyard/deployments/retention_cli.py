"""``shipyard logs retention``: the tenant's log retention policy and the size of its log."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Group
from rich.text import Text

from shipyard.client import exits
from shipyard.client.commands import ApiTyper, api_client, fail
from shipyard.client.output import emit

app = ApiTyper(help="Deployment logs: retention policy and size.", no_args_is_help=True)
retention_app = ApiTyper(
    help="How long finished runs' logs are kept (admins).", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")


def _request(method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    with api_client() as api:
        answer: dict[str, Any] = api.request(method, "/logs/retention", json=body)
    return answer


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _limit(own: int | None, default: int | None) -> str:
    """The tenant's own limit, else the installation's (named as such), else keep."""
    if own is not None:
        return str(own)
    if default is not None:
        return f"{default} (the installation's default)"
    return "keep"


def policy_view(policy: dict[str, Any]) -> Group:
    size = policy["size"]
    return Group(
        Text(f"days:  {_limit(policy['days'], policy.get('default_days'))}"),
        Text(f"lines: {_limit(policy['lines'], policy.get('default_lines'))}"),
        Text(f"size:  {size['rows']} lines, about {human_bytes(size['bytes'])}"),
    )


def _show(policy: dict[str, Any]) -> None:
    emit(policy, table=lambda: policy_view(policy))


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
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="Clear the tenant's policy: the installation's default applies (keep every "
            "log unless it sets one).",
        ),
    ] = False,
) -> None:
    """Replace the policy (an option left out: the installation's default of that kind, no
    limit unless it sets one)."""
    if keep and (days is not None or lines is not None):
        fail("--keep clears the policy: give it alone, or --days/--lines without it", exits.USAGE)
    if not keep and days is None and lines is None:
        fail("give --days N and/or --lines N (or --keep to clear the policy)", exits.USAGE)
    _show(_request("PUT", {"days": days, "lines": lines}))
