"""``shipyard groups`` (host groups and their members) and ``shipyard inventory import``.

Like ``shipyard hosts``, these talk to the REST API (SHIPYARD_URL with SHIPYARD_TOKEN); hosts
and groups are named by name or by id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

# The REST client is reached through shipyard.hosts.cli (the one module the import contract
# lets talk to it); here it is only named in annotations.
from shipyard.hosts.cli import (
    EXIT_USAGE,
    api_client,
    console,
    fail,
    host_by_name_or_id,
)

if TYPE_CHECKING:
    from shipyard.client import ApiClient

groups_app = typer.Typer(
    no_args_is_help=True,
    help="Host groups: list, add, change, delete them and their members.",
)
inventory_app = typer.Typer(no_args_is_help=True, help="Inventory: import an Ansible inventory.")

# The CLI's own bound on a file to send (the API refuses more content anyway).
MAX_FILE_BYTES = 1_000_000


def group_by_name_or_id(api: ApiClient, ref: str) -> dict[str, Any]:
    for group in api.get("/host-groups"):
        if ref in (group["name"], group["id"]):
            found: dict[str, Any] = group
            return found
    fail(f"no host group named {ref!r}")


def _host_names(api: ApiClient) -> dict[str, str]:
    return {host["id"]: host["name"] for host in api.paginate("/hosts", limit=200)}


def _groups_table(groups: list[dict[str, Any]], names: dict[str, str]) -> Table:
    table = Table(show_lines=False)
    for column in ("ID", "Name", "Pool", "Hosts", "Variables"):
        table.add_column(column, overflow="fold")
    for group in groups:
        table.add_row(
            group["id"],
            group["name"],
            group.get("pool") or "",
            ", ".join(names.get(host_id, host_id) for host_id in group["host_ids"]),
            ", ".join(
                variable["name"] + (" (secret)" if variable["secret"] else "")
                for variable in group["variables"]
            ),
        )
    return table


def _show(api: ApiClient, group: dict[str, Any]) -> None:
    console.print(_groups_table([group], _host_names(api)))


def _host_ids(api: ApiClient, refs: list[str] | None) -> list[str]:
    return [host_by_name_or_id(api, ref)["id"] for ref in refs or []]


Pool = Annotated[
    str | None, typer.Option(help="Worker pool that can reach its hosts, e.g. dc-east.")
]
Hosts = Annotated[
    list[str] | None, typer.Option("--host", help="A member host, by name or ID (repeat).")
]
Description = Annotated[str | None, typer.Option(help="What the group is for.")]


@groups_app.command("list")
def list_groups() -> None:
    """List the tenant's host groups with their pool, hosts and variable names."""
    with api_client() as api:
        groups = api.get("/host-groups")
        if not groups:
            console.print("no host groups")
            return
        console.print(_groups_table(groups, _host_names(api)))


@groups_app.command("create")
def create_group(
    name: Annotated[str, typer.Argument(help="Name of the new group.")],
    host: Hosts = None,
    pool: Pool = None,
    description: Description = None,
) -> None:
    """Add a host group."""
    with api_client() as api:
        body: dict[str, Any] = {"name": name, "host_ids": _host_ids(api, host)}
        if pool is not None:
            body["pool"] = pool
        if description is not None:
            body["description"] = description
        _show(api, api.post("/host-groups", body))


@groups_app.command("update")
def update_group(
    group: Annotated[str, typer.Argument(help="Name or ID of the group.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    pool: Pool = None,
    no_pool: Annotated[bool, typer.Option("--no-pool", help="Clear the group's pool.")] = False,
    description: Description = None,
) -> None:
    """Change the group's name, pool or description (members: add-hosts, remove-hosts)."""
    if pool is not None and no_pool:
        fail("give --pool or --no-pool, not both", EXIT_USAGE)
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if pool is not None or no_pool:
        body["pool"] = pool
    if description is not None:
        body["description"] = description
    if not body:
        fail("nothing to change: give at least one option", EXIT_USAGE)
    with api_client() as api:
        found = group_by_name_or_id(api, group)
        _show(api, api.patch(f"/host-groups/{found['id']}", body))


@groups_app.command("delete")
def delete_group(group: Annotated[str, typer.Argument(help="Name or ID of the group.")]) -> None:
    """Remove a group (its hosts stay)."""
    with api_client() as api:
        found = group_by_name_or_id(api, group)
        api.delete(f"/host-groups/{found['id']}")
    console.print(f"deleted host group {found['name']}")


def _change_members(group: str, hosts: list[str], *, add: bool) -> None:
    with api_client() as api:
        found = group_by_name_or_id(api, group)
        ids = _host_ids(api, hosts)
        members = list(found["host_ids"])
        if add:
            members += [host_id for host_id in ids if host_id not in members]
        else:
            members = [host_id for host_id in members if host_id not in ids]
        _show(api, api.patch(f"/host-groups/{found['id']}", {"host_ids": members}))


@groups_app.command("add-hosts")
def add_hosts(
    group: Annotated[str, typer.Argument(help="Name or ID of the group.")],
    hosts: Annotated[list[str], typer.Argument(help="Hosts to add, by name or ID.")],
) -> None:
    """Add hosts to a group (those already in it stay)."""
    _change_members(group, hosts, add=True)


@groups_app.command("remove-hosts")
def remove_hosts(
    group: Annotated[str, typer.Argument(help="Name or ID of the group.")],
    hosts: Annotated[list[str], typer.Argument(help="Hosts to remove, by name or ID.")],
) -> None:
    """Remove hosts from a group (the hosts themselves stay)."""
    _change_members(group, hosts, add=False)


def _guess_format(path: Path) -> Literal["ini", "yaml"]:
    return "yaml" if path.suffix.lower() in (".yml", ".yaml") else "ini"


def print_report(report: dict[str, Any]) -> None:
    """The import's created, updated and skipped names, one line each."""
    for outcome in ("created", "updated"):
        for kind in ("hosts", "groups"):
            names = report[outcome][kind]
            line = ", ".join(names) if names else "-"
            console.print(f"{outcome} {kind} ({len(names)}): {line}", highlight=False)
    skipped = report["skipped"]
    console.print(f"skipped ({len(skipped)}):", highlight=False)
    for item in skipped:
        owners = f" [{', '.join(item['owners'])}]" if item["owners"] else ""
        console.print(
            f"  {item['kind']} {item['name']}: {item['reason']}{owners}",
            highlight=False,
            markup=False,
        )


@inventory_app.command("import")
def import_inventory(
    file: Annotated[Path, typer.Argument(help="Ansible inventory file (INI or YAML).")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="ini or yaml (default: yaml for .yml/.yaml, else ini)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="User for created hosts that have no ansible_user.")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Private key for the hosts it creates.")
    ] = None,
) -> None:
    """Import hosts and groups (matched by name: a second import updates) and print the report."""
    chosen = fmt or _guess_format(file)
    if chosen not in ("ini", "yaml"):
        fail("--format must be ini or yaml", EXIT_USAGE)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            fail(f"{file} is larger than 1 MB", EXIT_USAGE)
        content = file.read_text(encoding="utf-8")
        private_key = key_file.read_text() if key_file is not None else None
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {exc.filename if isinstance(exc, OSError) else file}", EXIT_USAGE)
    body: dict[str, Any] = {"format": chosen, "content": content}
    credentials = {"user": user, "private_key": private_key}
    if any(value is not None for value in credentials.values()):
        body["credentials"] = {k: v for k, v in credentials.items() if v is not None}
    with api_client() as api:
        report = api.post("/inventory/import", body)
    print_report(report)
