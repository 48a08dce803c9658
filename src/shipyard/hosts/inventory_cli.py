"""``shipyard groups`` (host groups and their members) and ``shipyard inventory import``.

Like ``shipyard hosts``, these talk to the REST API; hosts and groups are named by name or by
id, and ``-o json`` prints the API's objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from shipyard.client import exits, names
from shipyard.client.commands import (
    ApiTyper,
    api_client,
    fail,
    name_argument,
    name_option,
    resolve,
)
from shipyard.client.http import ApiClient
from shipyard.client.output import emit, is_table

groups_app = ApiTyper(
    no_args_is_help=True,
    help="Host groups: list, show, add, change, delete them and their members.",
)
inventory_app = ApiTyper(no_args_is_help=True, help="Inventory: import an Ansible inventory.")

# The CLI's own bound on a file to send (the API refuses more content anyway).
MAX_FILE_BYTES = 1_000_000

GroupArgument = Annotated[
    str,
    name_argument(names.GROUP, "Name or ID of the group."),
]


def _host_names(api: ApiClient) -> dict[str, str]:
    return {host["id"]: host["name"] for host in api.paginate("/hosts", limit=200)}


def _groups_table(groups: list[dict[str, Any]], host_names: dict[str, str]) -> Table:
    table = Table(show_lines=False)
    for column in ("ID", "Name", "Pool", "Hosts", "Variables"):
        table.add_column(column, overflow="fold")
    for group in groups:
        table.add_row(
            group["id"],
            group["name"],
            group.get("pool") or "",
            ", ".join(host_names.get(host_id, host_id) for host_id in group["host_ids"]),
            ", ".join(
                variable["name"] + (" (secret)" if variable["secret"] else "")
                for variable in group["variables"]
            ),
        )
    return table


def _show(api: ApiClient, group: dict[str, Any]) -> None:
    host_names = _host_names(api) if group["host_ids"] and is_table() else {}
    emit(group, table=lambda: _groups_table([group], host_names))


def _host_ids(api: ApiClient, refs: list[str] | None) -> list[str]:
    return [resolve(api, names.HOST, ref) for ref in refs or []]


Pool = Annotated[
    str | None, typer.Option(help="Worker pool that can reach its hosts, e.g. dc-east.")
]
Hosts = Annotated[
    list[str] | None,
    name_option(names.HOST, "A member host, by name or ID (repeat).", "--host", metavar=None),
]
Description = Annotated[str | None, typer.Option(help="What the group is for.")]


@groups_app.command("list")
def list_groups() -> None:
    """List the tenant's host groups with their pool, hosts and variable names."""
    with api_client() as api:
        groups = api.get("/host-groups")
        host_names = _host_names(api) if groups and is_table() else {}
    emit(groups, table=lambda: _groups_table(groups, host_names) if groups else "no host groups")


@groups_app.command("show")
def show_group(group: GroupArgument) -> None:
    """Show one group: pool, member hosts, variable names."""
    with api_client() as api:
        _show(api, api.get(f"/host-groups/{resolve(api, names.GROUP, group)}"))


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
    group: GroupArgument,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    pool: Pool = None,
    no_pool: Annotated[bool, typer.Option("--no-pool", help="Clear the group's pool.")] = False,
    description: Description = None,
) -> None:
    """Change the group's name, pool or description (members: add-hosts, remove-hosts)."""
    if pool is not None and no_pool:
        fail("give --pool or --no-pool, not both", exits.USAGE)
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if pool is not None or no_pool:
        body["pool"] = pool
    if description is not None:
        body["description"] = description
    if not body:
        fail("nothing to change: give at least one option", exits.USAGE)
    with api_client() as api:
        _show(api, api.patch(f"/host-groups/{resolve(api, names.GROUP, group)}", body))


@groups_app.command("delete")
def delete_group(group: GroupArgument) -> None:
    """Remove a group (its hosts stay). -o json: {"id", "name", "deleted": true}."""
    with api_client() as api:
        found = api.get(f"/host-groups/{resolve(api, names.GROUP, group)}")
        api.delete(f"/host-groups/{found['id']}")
    emit(
        {"id": found["id"], "name": found["name"], "deleted": True},
        table=lambda: f"deleted host group {found['name']}",
    )


def _change_members(group: str, hosts: list[str], *, add: bool) -> None:
    with api_client() as api:
        found = api.get(f"/host-groups/{resolve(api, names.GROUP, group)}")
        ids = _host_ids(api, hosts)
        members = list(found["host_ids"])
        if add:
            members += [host_id for host_id in ids if host_id not in members]
        else:
            members = [host_id for host_id in members if host_id not in ids]
        _show(api, api.patch(f"/host-groups/{found['id']}", {"host_ids": members}))


MemberHosts = Annotated[list[str], name_argument(names.HOST, "Hosts, by name or ID.")]


@groups_app.command("add-hosts")
def add_hosts(group: GroupArgument, hosts: MemberHosts) -> None:
    """Add hosts to a group (those already in it stay)."""
    _change_members(group, hosts, add=True)


@groups_app.command("remove-hosts")
def remove_hosts(group: GroupArgument, hosts: MemberHosts) -> None:
    """Remove hosts from a group (the hosts themselves stay)."""
    _change_members(group, hosts, add=False)


def _guess_format(path: Path) -> Literal["ini", "yaml"]:
    return "yaml" if path.suffix.lower() in (".yml", ".yaml") else "ini"


def report_view(report: dict[str, Any]) -> RenderableType:
    """The import's created, updated and skipped names, one line each."""
    text = Text()
    for outcome in ("created", "updated"):
        for kind in ("hosts", "groups"):
            imported = report[outcome][kind]
            line = ", ".join(imported) if imported else "-"
            text.append(f"{outcome} {kind} ({len(imported)}): {line}\n")
    skipped = report["skipped"]
    text.append(f"skipped ({len(skipped)}):")
    for item in skipped:
        owners = f" [{', '.join(item['owners'])}]" if item["owners"] else ""
        text.append(f"\n  {item['kind']} {item['name']}: {item['reason']}{owners}")
    return text


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
        fail("--format must be ini or yaml", exits.USAGE)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            fail(f"{file} is larger than 1 MB", exits.USAGE)
        content = file.read_text(encoding="utf-8")
        private_key = key_file.read_text() if key_file is not None else None
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {exc.filename if isinstance(exc, OSError) else file}", exits.USAGE)
    body: dict[str, Any] = {"format": chosen, "content": content}
    credentials = {"user": user, "private_key": private_key}
    if any(value is not None for value in credentials.values()):
        body["credentials"] = {k: v for k, v in credentials.items() if v is not None}
    with api_client() as api:
        report = api.post("/inventory/import", body)
    emit(report, table=lambda: report_view(report))
