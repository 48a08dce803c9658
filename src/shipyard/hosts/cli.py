"""``shipyard hosts``: list, add, change, delete and test hosts through the REST API."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table

from shipyard.client import ApiClient, ApiError

app = typer.Typer(
    no_args_is_help=True,
    help="Hosts: list, add, change, delete and test them (talks to SHIPYARD_URL with SHIPYARD_TOKEN).",
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


def _read_secret_stdin(enabled: bool) -> str | None:
    """A password from standard input: never an option's value (process lists, history)."""
    if not enabled:
        return None
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        fail("--password-stdin: standard input held no password", EXIT_USAGE)
    return secret


def _read_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the key file {path}: {type(exc).__name__}", EXIT_USAGE)


def host_by_name_or_id(api: ApiClient, ref: str) -> dict[str, Any]:
    """The host named ``ref`` or with id ``ref``."""
    for host in api.paginate("/hosts", limit=200, search=ref):
        if ref in (host["name"], host["id"]):
            return host
    try:
        found: dict[str, Any] = api.get(f"/hosts/{UUID(ref)}")
    except ValueError:
        fail(f"no host named {ref!r}")
    return found


def _host_body(
    *,
    description: str | None,
    ip: str | None,
    port: int | None,
    user: str | None,
    password: str | None,
    private_key: str | None,
    tags: list[str] | None,
    pool: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": description,
        "ip": ip,
        "port": port,
        "user": user,
        "pool": pool,
        "tags": tags or None,
    }
    if password is not None:
        body["password"] = password
        body["auth_method"] = "password"
    if private_key is not None:
        body["private_key"] = private_key
        body["auth_method"] = "key"
    return {key: value for key, value in body.items() if value is not None}


def _show_host(host: dict[str, Any]) -> None:
    console.print(hosts_table([host]))
    facts = [
        f"tags: {', '.join(host.get('tags') or []) or '-'}",
        f"pool: {host.get('pool') or '-'}",
    ]
    console.print("  ".join(facts), highlight=False)


Description = Annotated[str | None, typer.Option(help="What the host is for.")]
Address = Annotated[str | None, typer.Option("--ip", help="IP address or host name.")]
Port = Annotated[int | None, typer.Option(min=1, max=65535, help="SSH port.")]
User = Annotated[str | None, typer.Option(help="SSH user.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the SSH password from standard input.")
]
KeyFile = Annotated[
    Path | None, typer.Option("--key-file", help="Private key file to log in with.")
]
Tags = Annotated[
    list[str] | None, typer.Option("--tag", help="A tag (repeat for more); replaces the tags.")
]
Pool = Annotated[
    str | None, typer.Option(help="Worker pool that can reach the host, e.g. dc-east.")
]


@app.command("create")
def create_host(
    name: Annotated[str, typer.Argument(help="Name of the new host.")],
    ip: Address = None,
    port: Port = None,
    user: User = None,
    password_stdin: PasswordStdin = False,
    key_file: KeyFile = None,
    tag: Tags = None,
    pool: Pool = None,
    description: Description = None,
) -> None:
    """Add an SSH host (credentials from standard input or a key file, never an option)."""
    body = _host_body(
        description=description,
        ip=ip,
        port=port,
        user=user,
        password=_read_secret_stdin(password_stdin),
        private_key=_read_key(key_file),
        tags=tag,
        pool=pool,
    )
    with api_client() as api:
        host = api.post("/hosts", {"name": name, **body})
    _show_host(host)


@app.command("update")
def update_host(
    host: Annotated[str, typer.Argument(help="Name or ID of the host.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    ip: Address = None,
    port: Port = None,
    user: User = None,
    password_stdin: PasswordStdin = False,
    key_file: KeyFile = None,
    tag: Tags = None,
    clear_tags: Annotated[bool, typer.Option("--clear-tags", help="Remove every tag.")] = False,
    pool: Pool = None,
    no_pool: Annotated[
        bool, typer.Option("--no-pool", help="Clear the host's own pool (its groups' applies).")
    ] = False,
    description: Description = None,
) -> None:
    """Change the options given; the rest stays as it is."""
    if pool is not None and no_pool:
        fail("give --pool or --no-pool, not both", EXIT_USAGE)
    if tag and clear_tags:
        fail("give --tag or --clear-tags, not both", EXIT_USAGE)
    body = _host_body(
        description=description,
        ip=ip,
        port=port,
        user=user,
        password=_read_secret_stdin(password_stdin),
        private_key=_read_key(key_file),
        tags=tag,
        pool=pool,
    )
    if name is not None:
        body["name"] = name
    if no_pool:
        body["pool"] = None
    if clear_tags:
        body["tags"] = []
    if not body:
        fail("nothing to change: give at least one option", EXIT_USAGE)
    with api_client() as api:
        found = host_by_name_or_id(api, host)
        updated = api.patch(f"/hosts/{found['id']}", body)
    _show_host(updated)


@app.command("delete")
def delete_host(host: Annotated[str, typer.Argument(help="Name or ID of the host.")]) -> None:
    """Remove a host (it leaves its groups)."""
    with api_client() as api:
        found = host_by_name_or_id(api, host)
        api.delete(f"/hosts/{found['id']}")
    console.print(f"deleted host {found['name']}")
