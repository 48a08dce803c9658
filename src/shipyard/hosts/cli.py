"""``shipyard hosts``: list, show, add, change, delete and test hosts through the REST API.

Hosts are named by name or id; ``-o json`` prints the API's host objects."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from shipyard.client import ApiClient, exits, names
from shipyard.client.commands import ApiTyper, api_client, fail, name_argument, resolve
from shipyard.client.output import emit, note

app = ApiTyper(no_args_is_help=True, help="Hosts: list, show, add, change, delete and test them.")

STATUS_STYLES = {
    "online": "green",
    "offline": "red",
    "auth_failed": "red",
    "host_key_mismatch": "bold red",
    "unknown": "yellow",
}
WAIT_POLL_SECONDS = 0.5

HostArgument = Annotated[
    str,
    name_argument(names.HOST, "Name or ID of the host."),
]


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


def host_view(host: dict[str, Any], *, details: bool = False) -> RenderableType:
    """One host: its row, then its tags and pool (and with ``details`` more facts)."""
    facts = [
        f"tags: {', '.join(host.get('tags') or []) or '-'}",
        f"pool: {host.get('pool') or '-'}",
    ]
    lines = ["  ".join(facts)]
    if details:
        lines += [
            f"description: {host.get('description') or '-'}",
            f"auth: {host.get('auth_method') or '-'}",
            f"host key: {host.get('host_key_fingerprint') or '-'}",
            "variables: "
            + (
                ", ".join(
                    variable["name"] + (" (secret)" if variable.get("secret") else "")
                    for variable in host.get("variables") or []
                )
                or "-"
            ),
        ]
        if host.get("public_key"):
            lines.append(f"public key: {host['public_key']}")
    return Group(hosts_table([host]), *(Text(line) for line in lines))


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
    emit(hosts, table=lambda: hosts_table(hosts) if hosts else "no hosts")


@app.command("show")
def show_host(host: HostArgument) -> None:
    """Show one host: address, status, tags, pool, host key, variable names."""
    with api_client() as api:
        found = api.get(f"/hosts/{resolve(api, names.HOST, host)}")
    emit(found, table=lambda: host_view(found, details=True))


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
    host: Annotated[
        str | None,
        name_argument(names.HOST, "Name or ID of the host to test."),
    ] = None,
    all_hosts: Annotated[
        bool, typer.Option("--all", help="Test every host (a background job).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="With --all: wait for the results.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="With --all --wait: seconds to wait.")] = 300.0,
) -> None:
    """Connect to a host (or --all), authenticate, run a probe and show the status.

    With --all, -o json prints {"queued": {job_id, hosts}, "hosts": [...]} (the hosts as
    tested; empty with --no-wait). Exit 1 when a host is not online."""
    if all_hosts == (host is not None):
        fail("give a host (name or ID) or --all (not both)", exits.USAGE)
    with api_client() as api:
        if host is not None:
            result = api.post(f"/hosts/{resolve(api, names.HOST, host)}/test")
            emit(result, table=lambda: hosts_table([result["host"]]))
            if result["status"] != "online":
                fail(result["message"])
            return
        before = _checked(api) if wait else {}
        queued = api.post("/hosts/test-all")
        note(f"testing {queued['hosts']} hosts (job {queued['job_id']})")
        hosts = _wait_for_tests(api, before, timeout) if wait and before else []
    emit({"queued": queued, "hosts": hosts}, table=lambda: hosts_table(hosts) if hosts else None)
    failing = [h for h in hosts if h["status"] != "online"]
    if failing:
        fail(f"{len(failing)} of {len(hosts)} hosts are not online")


def _read_secret_stdin(enabled: bool) -> str | None:
    """A password from standard input: never an option's value (process lists, history)."""
    if not enabled:
        return None
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        fail("--password-stdin: standard input held no password", exits.USAGE)
    return secret


def _read_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the key file {path}: {type(exc).__name__}", exits.USAGE)


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
    emit(host, table=lambda: host_view(host))


@app.command("update")
def update_host(
    host: HostArgument,
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
        fail("give --pool or --no-pool, not both", exits.USAGE)
    if tag and clear_tags:
        fail("give --tag or --clear-tags, not both", exits.USAGE)
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
        fail("nothing to change: give at least one option", exits.USAGE)
    with api_client() as api:
        updated = api.patch(f"/hosts/{resolve(api, names.HOST, host)}", body)
    emit(updated, table=lambda: host_view(updated))


@app.command("delete")
def delete_host(host: HostArgument) -> None:
    """Remove a host (it leaves its groups). -o json: {"id", "name", "deleted": true}."""
    with api_client() as api:
        found = api.get(f"/hosts/{resolve(api, names.HOST, host)}")
        api.delete(f"/hosts/{found['id']}")
    emit(
        {"id": found["id"], "name": found["name"], "deleted": True},
        table=lambda: f"deleted host {found['name']}",
    )
