"""``shipyard hosts``: list hosts and test connections through the REST API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(
    no_args_is_help=True,
    help="Hosts: list them and test their connections (talks to SHIPYARD_URL with SHIPYARD_TOKEN).",
)
console = Console()
err_console = Console(stderr=True)

STATUS_STYLES = {
    "online": "green",
    "offline": "red",
    "auth_failed": "red",
    "host_key_mismatch": "bold red",
    "unknown": "yellow",
}
WAIT_POLL_SECONDS = 0.5
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, exit_code: int = EXIT_FAILED) -> NoReturn:
    """One ``error:`` line on stderr, then exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


@contextmanager
def api_client() -> Iterator[ApiClient]:
    """The REST client from the environment; API errors end the command with one line."""
    try:
        with ApiClient() as api:
            yield api
    except ApiError as exc:
        fail(str(exc))


def _status(value: str) -> str:
    return f"[{STATUS_STYLES.get(value, 'white')}]{value}[/]"


def _address(host: dict[str, Any]) -> str:
    if host["type"] == "local":
        return "local"
    user = f"{host['user']}@" if host.get("user") else ""
    return f"{user}{host.get('ip') or '?'}:{host.get('port') or 22}"


def hosts_table(hosts: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False)
    for column in ("ID", "Name", "Address", "OS", "Status", "RTT", "Checked", "Message"):
        table.add_column(column, overflow="fold")
    for host in hosts:
        table.add_row(
            host["id"],
            host["name"],
            _address(host) + (" (windows)" if host.get("is_windows") else ""),
            host.get("os_info") or "",
            _status(host["status"]),
            f"{host['round_trip_ms']} ms" if host.get("round_trip_ms") is not None else "",
            (host.get("last_checked_at") or "")[:19].replace("T", " "),
            host.get("status_message") or "",
        )
    return table


@app.command("list")
def list_hosts(
    status: Annotated[str | None, typer.Option(help="Only hosts with this status.")] = None,
    host_type: Annotated[str | None, typer.Option("--type", help="ssh or local.")] = None,
    search: Annotated[str | None, typer.Option(help="Part of the host name.")] = None,
) -> None:
    """List the tenant's hosts with their last connection status."""
    with api_client() as api:
        hosts = list(
            api.paginate("/hosts", limit=200, status=status, type=host_type, search=search)
        )
    if not hosts:
        console.print("no hosts")
        return
    console.print(hosts_table(hosts))


def _checked(api: ApiClient) -> dict[str, str | None]:
    return {h["id"]: h.get("last_checked_at") for h in api.paginate("/hosts", limit=200)}


def _wait_for_tests(api: ApiClient, before: dict[str, str | None], timeout: float) -> list[Any]:
    """Poll until every host listed in ``before`` has a newer check (server clock only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts = list(api.paginate("/hosts", limit=200))
        pending = [
            h for h in hosts if h["id"] in before and h.get("last_checked_at") == before[h["id"]]
        ]
        if not pending:
            return hosts
        time.sleep(WAIT_POLL_SECONDS)
    fail(f"not every host was tested within {timeout:g} s (is a worker running?)")


@app.command("test")
def test_hosts(
    host_id: Annotated[str | None, typer.Argument(help="ID of the host to test.")] = None,
    all_hosts: Annotated[
        bool, typer.Option("--all", help="Test every host (a background job).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="With --all: wait for the results.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="With --all --wait: seconds to wait.")] = 300.0,
) -> None:
    """Connect to a host (or --all), authenticate, run a probe and show the status."""
    if all_hosts == (host_id is not None):
        fail("give a host ID or --all (not both)", EXIT_USAGE)
    with api_client() as api:
        if host_id is not None:
            result = api.post(f"/hosts/{host_id}/test")
            console.print(hosts_table([result["host"]]))
            if result["status"] != "online":
                fail(result["message"])
            return
        before = _checked(api) if wait else {}
        queued = api.post("/hosts/test-all")
        console.print(f"testing {queued['hosts']} hosts (job {queued['job_id']})")
        if not wait or not before:
            return
        hosts = _wait_for_tests(api, before, timeout)
    console.print(hosts_table(hosts))
    failing = [h for h in hosts if h["status"] != "online"]
    if failing:
        fail(f"{len(failing)} of {len(hosts)} hosts are not online")
