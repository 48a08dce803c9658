"""Importing an Ansible inventory into hosts, groups and variables.

Three steps, kept apart by what they touch:

- :func:`plan_import` (pure): read the file (:mod:`shipyard.hosts.ansible`) and decide each
  host's address, port, user and variables and each group's members and variables, checking
  them with the hosts API's own rules; anything wrong is a 422 naming the line or YAML path.
- :func:`import_inventory` (the flow): the plan, then the outbound policy on every address (a
  DNS lookup, outside any transaction) and a sent private key's public half, then
- :func:`apply_import` (the service): one transaction that creates or updates by name, and
  one audit entry with the counts. A refusal anywhere leaves nothing written.

Ansible's ``children`` become flat membership: a host in a child group is stored as a member of
every ancestor group too. ``ansible_password``/``ansible_ssh_pass`` become the host's password
(encrypted, never echoed); other ``ansible_*`` settings have no Shipyard meaning and are
reported as skipped, by name only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.config import Settings
from shipyard.errors import ShipyardError, ValidationFailed
from shipyard.hosts import service
from shipyard.hosts.ansible import (
    ALL,
    UNGROUPED,
    AnsibleHost,
    AnsibleInventory,
    InventoryError,
    parse_inventory,
)
from shipyard.hosts.inventory import host_inventories, import_group, merged_variables
from shipyard.hosts.keys import public_key_of
from shipyard.hosts.models import Host
from shipyard.hosts.schemas import (
    HostCreate,
    HostUpdate,
    ImportCredentials,
    ImportedNames,
    InventoryImport,
    InventoryImportReport,
    SkippedItem,
    Variable,
)

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

# Ansible connection settings that are host fields here (both spellings Ansible accepts).
ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
# Secrets: the host's password. Never echoed, never logged, never in the report's reasons.
PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
CONNECTION_VARS = frozenset((*ADDRESS_VARS, *PORT_VARS, *USER_VARS, *PASSWORD_VARS))
SKIP_REASONS = {
    "ansible_ssh_private_key_file": "a key file on the Ansible controller; send the key as "
    "credentials.private_key",
    "ansible_connection": "Shipyard connects over SSH",
}
NOT_AN_ADDRESS = "no ansible_host, and the name is not an IP address or a host name"
NO_USER = "no ansible_user: set it in the inventory or send credentials.user"
ANSIBLE_SETTING = "an Ansible setting with no Shipyard equivalent"
MAX_GROUP_NAME = 100  # as HostGroupCreate.name
# Outbound policy checks (DNS lookups) at once.
ADDRESS_CHECKS = 8


@dataclass
class PlannedHost:
    name: str
    where: str
    create: HostCreate
    # What a re-import changes on an existing host: only what the inventory itself says.
    update: dict[str, Any]
    variables: list[Variable]


@dataclass
class PlannedGroup:
    name: str
    members: list[str]
    variables: list[Variable]


@dataclass
class ImportPlan:
    hosts: list[PlannedHost] = field(default_factory=list)
    groups: list[PlannedGroup] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


class _Skips:
    """Skipped items, one per (kind, name, reason) with every owner it applied to."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str], list[str]] = {}

    def add(self, kind: str, name: str, reason: str, owner: str | None = None) -> None:
        owners = self._items.setdefault((kind, name, reason), [])
        if owner is not None and owner not in owners:
            owners.append(owner)

    def items(self) -> list[SkippedItem]:
        return [
            SkippedItem.model_validate(
                {"kind": kind, "name": name, "reason": reason, "owners": owners}
            )
            for (kind, name, reason), owners in self._items.items()
        ]


def _refused(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", field="content", code="inventory_invalid")


def _pydantic_message(exc: ValidationError) -> str:
    # Messages and field names only: an input value may be a password.
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error.get("loc", ()))
    return f"{location}: {error['msg']}" if location else str(error["msg"])


def _variables(values: dict[str, str], owner: str, skips: _Skips) -> list[Variable]:
    """Plain variables from Ansible vars; connection settings and unusable names are skipped."""
    found: list[Variable] = []
    for name, value in values.items():
        if name in CONNECTION_VARS:
            continue
        if name.startswith("ansible_"):
            skips.add("variable", name, SKIP_REASONS.get(name, ANSIBLE_SETTING), owner)
            continue
        try:
            found.append(Variable(name=name, value=value))
        except ValidationError as exc:
            skips.add("variable", name, str(exc.errors()[0]["msg"]), owner)
    return found


def _depths(inventory: AnsibleInventory) -> dict[str, int]:
    """How deep each group sits under ``all``: Ansible applies deeper groups' vars later."""
    parents: dict[str, list[str]] = defaultdict(list)
    for group in inventory.groups.values():
        for child in group.children:
            parents[child].append(group.name)
    depths: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in depths:
            above = [p for p in parents[name] if p != name]
            depths[name] = 0 if name == ALL else 1 + max((depth(p) for p in above), default=0)
        return depths[name]

    for name in inventory.groups:
        depth(name)
    return depths


def _connection(
    inventory: AnsibleInventory, host: AnsibleHost, groups: list[str], depths: dict[str, int]
) -> dict[str, str]:
    """The host's connection settings as Ansible resolves them: ``all``, then groups by depth
    and name, then the host's own."""
    settings: dict[str, str] = {}
    chain = [ALL, *sorted(groups, key=lambda name: (depths.get(name, 1), name))]
    for name in chain:
        group = inventory.groups.get(name)
        if group is not None:
            settings.update({k: v for k, v in group.vars.items() if k in CONNECTION_VARS})
            if "ansible_connection" in group.vars:
                settings["ansible_connection"] = group.vars["ansible_connection"]
    settings.update(
        {k: v for k, v in host.vars.items() if k in CONNECTION_VARS or k == "ansible_connection"}
    )
    return settings


def _first(settings: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if settings.get(name):
            return settings[name]
    return None


def _plan_host(
    host: AnsibleHost,
    connection: dict[str, str],
    credentials: ImportCredentials | None,
    skips: _Skips,
) -> PlannedHost:
    where = f"{host.where}: host {host.name}"
    sent = credentials or ImportCredentials()
    address = _first(connection, ADDRESS_VARS) or host.name
    port = _first(connection, PORT_VARS)
    user = _first(connection, USER_VARS)
    password = _first(connection, PASSWORD_VARS)
    update: dict[str, Any] = {"ip": address}
    if port is not None:
        update["port"] = port
    if user is not None:
        update["user"] = user
    if password is not None:
        update["password"] = password
    create: dict[str, Any] = {"name": host.name, **update}
    create.setdefault("user", sent.user)
    if password is not None:
        # The inventory's own password for this host wins over the import's default log-in.
        create["auth_method"] = "password"
    else:
        create["password"] = sent.password
        if sent.private_key is not None:
            create["private_key"] = sent.private_key
            create["private_key_passphrase"] = sent.private_key_passphrase
        create["auth_method"] = sent.auth_method
    variables = _variables(host.vars, f"host {host.name}", skips)
    try:
        planned = HostCreate.model_validate(
            {k: v for k, v in create.items() if v is not None} | {"variables": variables}
        )
        HostUpdate.model_validate(update)
    except ValidationError as exc:
        if exc.errors()[0].get("loc") == ("ip",) and address == host.name:
            raise _refused(where, NOT_AN_ADDRESS) from None
        raise _refused(where, _pydantic_message(exc)) from None
    return PlannedHost(
        name=host.name, where=where, create=planned, update=update, variables=variables
    )


def plan_import(data: InventoryImport) -> ImportPlan:
    """What the import would write, checked; a 422 naming the line or path when it cannot."""
    try:
        inventory = parse_inventory(data.content, data.format)
    except InventoryError as exc:
        raise _refused(exc.where, exc.message) from None
    skips = _Skips()
    plan = ImportPlan()
    groups_of: dict[str, list[str]] = defaultdict(list)
    members = {name: inventory.members(name) for name in inventory.groups}
    for name, hosts in members.items():
        for host_name in hosts:
            groups_of[host_name].append(name)
    depths = _depths(inventory)
    for host in inventory.hosts.values():
        connection = _connection(inventory, host, groups_of[host.name], depths)
        kind = connection.get("ansible_connection", "ssh")
        if kind == "local":
            skips.add(
                "host",
                host.name,
                "ansible_connection=local: add a local host by hand where this server allows",
            )
            continue
        plan.hosts.append(_plan_host(host, connection, data.credentials, skips))
    imported = {planned.name for planned in plan.hosts}
    for group in inventory.groups.values():
        variables = _variables(group.vars, f"group {group.name}", skips)
        if group.name == UNGROUPED:
            # Ansible's group of the hosts in no other group: they are imported without one.
            for variable in variables:
                skips.add("variable", variable.name, "ungrouped is not a group here", "ungrouped")
            continue
        if group.name == ALL and not variables:
            continue  # every host is in Ansible's 'all'; a group of that name only holds its vars
        hosts = list(inventory.hosts) if group.name == ALL else members[group.name]
        if len(group.name) > MAX_GROUP_NAME:
            raise _refused(group.where, f"group name {group.name!r} is too long")
        plan.groups.append(
            PlannedGroup(
                name=group.name,
                members=[h for h in hosts if h in imported],
                variables=variables,
            )
        )
    plan.skipped = skips.items()
    return plan


async def apply_import(
    *,
    session: AsyncSession,
    actor: Actor,
    plan: ImportPlan,
    fmt: str,
    settings: Settings,
    derived_key: service.DerivedKey | None = None,
) -> InventoryImportReport:
    """Create or update the planned hosts and groups by name, in this one transaction; audited."""
    tenant_id = actor.tenant_id
    names = [planned.name for planned in plan.hosts]
    existing = {
        host.name: host
        for host in await session.scalars(
            select(Host).where(Host.tenant_id == tenant_id, Host.name.in_(names))
        )
    }
    stored = await host_inventories(
        session, tenant_id=tenant_id, host_ids=[host.id for host in existing.values()]
    )
    created, updated = ImportedNames(), ImportedNames()
    ids = {}
    for planned in plan.hosts:
        host = existing.get(planned.name)
        if host is None and planned.create.user is None:
            raise _refused(planned.where, NO_USER)
        try:
            if host is None:
                host = await service.insert_host(
                    session=session,
                    tenant_id=tenant_id,
                    data=planned.create,
                    settings=settings,
                    derived_key=derived_key,
                )
                created.hosts.append(planned.name)
            else:
                variables = merged_variables(stored[host.id].variables, planned.variables)
                data = HostUpdate.model_validate({**planned.update, "variables": variables})
                await service.change_host(session=session, host=host, data=data, settings=settings)
                updated.hosts.append(planned.name)
        except ValidationError as exc:
            raise _refused(planned.where, _pydantic_message(exc)) from None
        except ShipyardError as exc:
            raise _refused(planned.where, exc.message) from None
        ids[planned.name] = host.id
    for group in plan.groups:
        was_created = await import_group(
            session,
            tenant_id=tenant_id,
            name=group.name,
            host_ids=[ids[name] for name in group.members],
            variables=group.variables,
        )
        (created if was_created else updated).groups.append(group.name)
    await session.flush()
    report = InventoryImportReport(created=created, updated=updated, skipped=plan.skipped)
    await audit(
        session,
        actor=actor,
        action="inventory.import",
        resource_type="inventory",
        # Counts only: names may be many, and the file's values stay out of the audit log.
        details={
            "format": fmt,
            "created": {"hosts": len(created.hosts), "groups": len(created.groups)},
            "updated": {"hosts": len(updated.hosts), "groups": len(updated.groups)},
            "skipped": len(report.skipped),
        },
    )
    return report


async def _check_addresses(runtime: Runtime, plan: ImportPlan) -> None:
    """The outbound policy on every address, as the hosts API applies it (DNS, bounded)."""
    limit = asyncio.Semaphore(ADDRESS_CHECKS)
    first_use: dict[str, PlannedHost] = {}
    for planned in plan.hosts:
        first_use.setdefault(planned.update["ip"], planned)

    async def check(address: str, planned: PlannedHost) -> None:
        async with limit:
            try:
                await runtime.outbound.validate_host(address, field="content")
            except ValidationFailed as exc:
                raise ValidationFailed(
                    f"{planned.where}: {exc.message}", field="content", code=exc.code
                ) from None

    await asyncio.gather(*(check(address, planned) for address, planned in first_use.items()))


async def import_inventory(
    *, runtime: Runtime, actor: Actor, data: InventoryImport
) -> InventoryImportReport:
    """Read, check and store an Ansible inventory; nothing is written unless all of it can be."""
    plan = await asyncio.to_thread(plan_import, data)
    await _check_addresses(runtime, plan)
    derived_key = None
    sent = data.credentials
    if sent is not None and sent.private_key:
        try:
            public = await public_key_of(sent.private_key, sent.private_key_passphrase)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, field=f"credentials.{exc.field}") from None
        derived_key = (sent.private_key, sent.private_key_passphrase, public)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await apply_import(
            session=session,
            actor=actor,
            plan=plan,
            fmt=data.format,
            settings=runtime.settings,
            derived_key=derived_key,
        )
