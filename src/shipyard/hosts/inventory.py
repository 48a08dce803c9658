"""Inventory: host groups, tags and variables, and the one place a target becomes hosts.

Services only (a session, no network). Secret variable values are stored in an encrypted
column and leave this module only through :func:`host_environments`, which the deployment run
uses to build each host's environment (and to add the secrets to its log masker).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.hosts.models import Host, HostGroup, HostGroupMember, HostTag, InventoryVariable
from shipyard.hosts.schemas import (
    HostGroupCreate,
    HostGroupRead,
    HostGroupUpdate,
    Target,
    Variable,
    VariableRead,
)

# --- variables ---------------------------------------------------------------------------------


def _variable_read(row: InventoryVariable) -> VariableRead:
    return VariableRead(name=row.name, secret=row.secret, value=None if row.secret else row.value)


async def _replace_variables(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    variables: Sequence[Variable],
    host_id: UUID | None = None,
    group_id: UUID | None = None,
    field_name: str = "variables",
) -> None:
    """Store exactly ``variables`` for the host or group; a secret sent without a value keeps
    the value stored under its name (write-only values are never sent back to be re-sent)."""
    owner = (
        InventoryVariable.host_id == host_id
        if host_id is not None
        else InventoryVariable.group_id == group_id
    )
    stored = {
        row.name: row
        for row in await session.scalars(
            select(InventoryVariable).where(InventoryVariable.tenant_id == tenant_id, owner)
        )
    }
    rows: list[InventoryVariable] = []
    for index, variable in enumerate(variables):
        value = variable.value
        if value is None:
            kept = stored.get(variable.name)
            if not variable.secret or kept is None or not kept.secret:
                raise ValidationFailed(
                    f"variable {variable.name} needs a value",
                    field=f"{field_name}.{index}.value",
                )
            value = kept.secret_value
        rows.append(
            InventoryVariable(
                tenant_id=tenant_id,
                host_id=host_id,
                group_id=group_id,
                name=variable.name,
                secret=variable.secret,
                value=None if variable.secret else value,
                secret_value=value if variable.secret else None,
            )
        )
    await session.execute(
        delete(InventoryVariable).where(InventoryVariable.tenant_id == tenant_id, owner)
    )
    await session.flush()
    session.add_all(rows)
    await session.flush()


async def _variables_of(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    host_ids: Iterable[UUID] = (),
    group_ids: Iterable[UUID] = (),
) -> list[InventoryVariable]:
    hosts, groups = list(host_ids), list(group_ids)
    statement = select(InventoryVariable).where(InventoryVariable.tenant_id == tenant_id)
    if hosts and groups:
        statement = statement.where(
            InventoryVariable.host_id.in_(hosts) | InventoryVariable.group_id.in_(groups)
        )
    elif hosts:
        statement = statement.where(InventoryVariable.host_id.in_(hosts))
    elif groups:
        statement = statement.where(InventoryVariable.group_id.in_(groups))
    else:
        return []
    return list(await session.scalars(statement.order_by(InventoryVariable.name)))


# --- hosts: tags and variables -----------------------------------------------------------------


@dataclass
class HostInventory:
    tags: list[str] = field(default_factory=list)
    variables: list[VariableRead] = field(default_factory=list)


async def host_inventories(
    session: AsyncSession, *, tenant_id: UUID, host_ids: Sequence[UUID]
) -> dict[UUID, HostInventory]:
    """Tags and variables (secrets without values) of each of ``host_ids``."""
    found: dict[UUID, HostInventory] = {host_id: HostInventory() for host_id in host_ids}
    if not host_ids:
        return found
    for host_id, tag in await session.execute(
        select(HostTag.host_id, HostTag.tag)
        .where(HostTag.tenant_id == tenant_id, HostTag.host_id.in_(host_ids))
        .order_by(HostTag.tag)
    ):
        found[host_id].tags.append(tag)
    for row in await _variables_of(session, tenant_id=tenant_id, host_ids=host_ids):
        if row.host_id is not None:
            found[row.host_id].variables.append(_variable_read(row))
    return found


async def set_host_inventory(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    host_id: UUID,
    tags: Sequence[str] | None,
    variables: Sequence[Variable] | None,
) -> None:
    """Replace the host's tags and/or variables (``None`` leaves that part as it is).

    Part of host create and update, which write the audit entry.
    """
    if tags is not None:
        await session.execute(
            delete(HostTag).where(HostTag.tenant_id == tenant_id, HostTag.host_id == host_id)
        )
        session.add_all(HostTag(tenant_id=tenant_id, host_id=host_id, tag=tag) for tag in tags)
        await session.flush()
    if variables is not None:
        await _replace_variables(session, tenant_id=tenant_id, variables=variables, host_id=host_id)


# --- groups ------------------------------------------------------------------------------------


async def _get_group(session: AsyncSession, *, tenant_id: UUID, group_id: UUID) -> HostGroup:
    group = await session.scalar(
        select(HostGroup).where(HostGroup.id == group_id, HostGroup.tenant_id == tenant_id)
    )
    if group is None:
        raise NotFound("host group not found", code="host_group_not_found")
    return group


async def _check_group_name_free(
    session: AsyncSession, *, tenant_id: UUID, name: str, except_id: UUID | None = None
) -> None:
    statement = select(HostGroup.id).where(HostGroup.tenant_id == tenant_id, HostGroup.name == name)
    if except_id is not None:
        statement = statement.where(HostGroup.id != except_id)
    if await session.scalar(statement) is not None:
        raise Conflict(f"a host group named {name!r} already exists", code="host_group_name_taken")


async def _check_hosts(
    session: AsyncSession, *, tenant_id: UUID, host_ids: Sequence[UUID], field_name: str
) -> None:
    known = set(
        await session.scalars(
            select(Host.id).where(Host.tenant_id == tenant_id, Host.id.in_(host_ids))
        )
    )
    for index, host_id in enumerate(host_ids):
        if host_id not in known:
            raise ValidationFailed(f"host {host_id} does not exist", field=f"{field_name}.{index}")


async def _set_members(
    session: AsyncSession, *, tenant_id: UUID, group_id: UUID, host_ids: Sequence[UUID]
) -> None:
    unique = list(dict.fromkeys(host_ids))
    await _check_hosts(session, tenant_id=tenant_id, host_ids=unique, field_name="host_ids")
    await session.execute(
        delete(HostGroupMember).where(
            HostGroupMember.tenant_id == tenant_id, HostGroupMember.group_id == group_id
        )
    )
    session.add_all(
        HostGroupMember(tenant_id=tenant_id, group_id=group_id, host_id=host_id)
        for host_id in unique
    )
    await session.flush()


async def _group_reads(
    session: AsyncSession, *, tenant_id: UUID, groups: Sequence[HostGroup]
) -> list[HostGroupRead]:
    ids = [group.id for group in groups]
    members: dict[UUID, list[UUID]] = defaultdict(list)
    variables: dict[UUID, list[VariableRead]] = defaultdict(list)
    if ids:
        for group_id, host_id in await session.execute(
            select(HostGroupMember.group_id, HostGroupMember.host_id)
            .join(Host, Host.id == HostGroupMember.host_id)
            .where(HostGroupMember.tenant_id == tenant_id, HostGroupMember.group_id.in_(ids))
            .order_by(Host.name)
        ):
            members[group_id].append(host_id)
        for row in await _variables_of(session, tenant_id=tenant_id, group_ids=ids):
            if row.group_id is not None:
                variables[row.group_id].append(_variable_read(row))
    return [
        HostGroupRead(
            id=group.id,
            name=group.name,
            description=group.description,
            pool=group.pool,
            host_ids=members[group.id],
            variables=variables[group.id],
            created_at=group.created_at,
            updated_at=group.updated_at,
        )
        for group in groups
    ]


async def read_groups(*, session: AsyncSession, tenant_id: UUID) -> list[HostGroupRead]:
    """Every group of the tenant, by name, with members and variables (secrets without values)."""
    groups = list(
        await session.scalars(
            select(HostGroup).where(HostGroup.tenant_id == tenant_id).order_by(HostGroup.name)
        )
    )
    return await _group_reads(session, tenant_id=tenant_id, groups=groups)


async def read_group(*, session: AsyncSession, tenant_id: UUID, group_id: UUID) -> HostGroupRead:
    group = await _get_group(session, tenant_id=tenant_id, group_id=group_id)
    return (await _group_reads(session, tenant_id=tenant_id, groups=[group]))[0]


async def create_group(
    *, session: AsyncSession, actor: Actor, data: HostGroupCreate
) -> HostGroupRead:
    """Add a group with its members and variables (audited)."""
    tenant_id = actor.tenant_id
    await _check_group_name_free(session, tenant_id=tenant_id, name=data.name)
    group = HostGroup(
        tenant_id=tenant_id, name=data.name, description=data.description, pool=data.pool
    )
    session.add(group)
    await session.flush()
    await _set_members(session, tenant_id=tenant_id, group_id=group.id, host_ids=data.host_ids)
    await _replace_variables(
        session, tenant_id=tenant_id, variables=data.variables, group_id=group.id
    )
    await session.refresh(group)
    await audit(
        session,
        actor=actor,
        action="host_group.create",
        resource_type="host_group",
        resource_id=group.id,
        # Variable names only: values (secret or not) stay out of the audit log.
        details={
            "name": group.name,
            "pool": group.pool,
            "host_ids": [str(host_id) for host_id in dict.fromkeys(data.host_ids)],
            "variables": [variable.name for variable in data.variables],
        },
    )
    return await read_group(session=session, tenant_id=tenant_id, group_id=group.id)


async def update_group(
    *, session: AsyncSession, actor: Actor, group_id: UUID, data: HostGroupUpdate
) -> HostGroupRead:
    """Change the sent fields; ``host_ids`` and ``variables`` replace the stored lists."""
    tenant_id = actor.tenant_id
    group = await _get_group(session, tenant_id=tenant_id, group_id=group_id)
    fields = set(data.model_fields_set)
    for required in ("name", "host_ids", "variables"):
        if required in fields and getattr(data, required) is None:
            raise ValidationFailed(f"{required} cannot be null", field=required)
    if data.name is not None and data.name != group.name:
        await _check_group_name_free(
            session, tenant_id=tenant_id, name=data.name, except_id=group.id
        )
        group.name = data.name
    if "description" in fields:
        group.description = data.description
    if "pool" in fields:
        group.pool = data.pool
    if data.host_ids is not None:
        await _set_members(session, tenant_id=tenant_id, group_id=group.id, host_ids=data.host_ids)
    if data.variables is not None:
        await _replace_variables(
            session, tenant_id=tenant_id, variables=data.variables, group_id=group.id
        )
    await session.flush()
    await session.refresh(group)
    await audit(
        session,
        actor=actor,
        action="host_group.update",
        resource_type="host_group",
        resource_id=group.id,
        details={"fields": sorted(fields)},
    )
    return await read_group(session=session, tenant_id=tenant_id, group_id=group.id)


async def delete_group(*, session: AsyncSession, actor: Actor, group_id: UUID) -> None:
    """Remove a group (its hosts stay; its variables go)."""
    group = await _get_group(session, tenant_id=actor.tenant_id, group_id=group_id)
    await session.delete(group)
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="host_group.delete",
        resource_type="host_group",
        resource_id=group_id,
        details={"name": group.name},
    )


def merged_variables(
    stored: Sequence[VariableRead], imported: Sequence[Variable]
) -> list[Variable]:
    """``stored`` with ``imported`` set over it by name (secrets kept without their values)."""
    merged = {
        variable.name: Variable(
            name=variable.name,
            secret=variable.secret,
            value=None if variable.secret else variable.value,
        )
        for variable in stored
    }
    for variable in imported:
        merged[variable.name] = variable
    return list(merged.values())


async def import_group(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    name: str,
    host_ids: Sequence[UUID],
    variables: Sequence[Variable],
) -> bool:
    """Create group ``name`` or add to it: ``host_ids`` join its members and ``variables`` are
    set over its own; nothing is removed. Returns whether it was created. The import audits."""
    group = await session.scalar(
        select(HostGroup).where(HostGroup.tenant_id == tenant_id, HostGroup.name == name)
    )
    members: list[UUID] = []
    stored: list[VariableRead] = []
    created = group is None
    if group is None:
        group = HostGroup(tenant_id=tenant_id, name=name)
        session.add(group)
        await session.flush()
    else:
        read = (await _group_reads(session, tenant_id=tenant_id, groups=[group]))[0]
        members, stored = read.host_ids, read.variables
    await _set_members(
        session, tenant_id=tenant_id, group_id=group.id, host_ids=[*members, *host_ids]
    )
    if variables:
        await _replace_variables(
            session,
            tenant_id=tenant_id,
            variables=merged_variables(stored, variables),
            group_id=group.id,
        )
    return created


async def host_choices(*, session: AsyncSession, tenant_id: UUID) -> list[tuple[UUID, str]]:
    """Every host of the tenant as (id, name), by name: what a group's members are picked from."""
    rows = await session.execute(
        select(Host.id, Host.name).where(Host.tenant_id == tenant_id).order_by(Host.name, Host.id)
    )
    return [(host_id, name) for host_id, name in rows]


# --- targets -----------------------------------------------------------------------------------


async def resolve_target(*, session: AsyncSession, tenant_id: UUID, target: Target) -> list[UUID]:
    """The ids of the hosts ``target`` means now, by host name.

    The hosts listed, plus the hosts in any listed group (or, with no groups, any host) that
    carry every listed tag; unknown hosts or groups are a 422 naming the item.
    """
    await _check_hosts(
        session, tenant_id=tenant_id, host_ids=target.host_ids, field_name="host_ids"
    )
    known_groups = set(
        await session.scalars(
            select(HostGroup.id).where(
                HostGroup.tenant_id == tenant_id, HostGroup.id.in_(target.group_ids)
            )
        )
    )
    for index, group_id in enumerate(target.group_ids):
        if group_id not in known_groups:
            raise ValidationFailed(
                f"host group {group_id} does not exist", field=f"group_ids.{index}"
            )
    chosen: ColumnElement[bool] = Host.id.in_(target.host_ids)
    if target.group_ids or target.tags:
        by_rule: ColumnElement[bool] = Host.tenant_id == tenant_id
        if target.group_ids:
            by_rule = by_rule & exists().where(
                HostGroupMember.host_id == Host.id,
                HostGroupMember.group_id.in_(target.group_ids),
            )
        for tag in target.tags:
            by_rule = by_rule & exists().where(HostTag.host_id == Host.id, HostTag.tag == tag)
        chosen = chosen | by_rule
    rows = await session.scalars(
        select(Host.id).where(Host.tenant_id == tenant_id, chosen).order_by(Host.name, Host.id)
    )
    return list(rows)


# --- worker pools ------------------------------------------------------------------------------


async def effective_pools(
    *, session: AsyncSession, tenant_id: UUID, host_ids: Sequence[UUID]
) -> dict[UUID, str | None]:
    """The worker pool each host runs in: its own, else its groups' (groups by name, the last
    one naming a pool winning, as for group variables), else None (any worker).

    Every id asked for is a key; an id that is no host of the tenant maps to None.
    """
    found: dict[UUID, str | None] = {host_id: None for host_id in host_ids}
    if not host_ids:
        return found
    own: dict[UUID, str | None] = {
        host_id: pool
        for host_id, pool in await session.execute(
            select(Host.id, Host.pool).where(Host.tenant_id == tenant_id, Host.id.in_(host_ids))
        )
    }
    # Ordered by name so that the last row per host is the last-named group with a pool.
    for host_id, pool in await session.execute(
        select(HostGroupMember.host_id, HostGroup.pool)
        .join(HostGroup, HostGroup.id == HostGroupMember.group_id)
        .where(
            HostGroupMember.tenant_id == tenant_id,
            HostGroupMember.host_id.in_(host_ids),
            HostGroup.pool.is_not(None),
        )
        .order_by(HostGroup.name, HostGroup.id)
    ):
        found[host_id] = pool
    for host_id, pool in own.items():
        if pool is not None:
            found[host_id] = pool
    return found


# --- run time ----------------------------------------------------------------------------------


@dataclass
class HostEnvironment:
    """A host's inventory variables at run time: group values overridden by the host's own."""

    plain: dict[str, str] = field(default_factory=dict)
    secret: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: str, *, secret: bool) -> None:
        self.plain.pop(name, None)
        self.secret.pop(name, None)
        (self.secret if secret else self.plain)[name] = value


async def host_environments(
    *, session: AsyncSession, tenant_id: UUID, host_ids: Sequence[UUID]
) -> dict[UUID, HostEnvironment]:
    """Each host's variables with secret values decrypted: its groups' (by group name, a later
    name winning where two groups set one variable), then the host's own over them."""
    found = {host_id: HostEnvironment() for host_id in host_ids}
    if not host_ids:
        return found
    memberships = list(
        await session.execute(
            select(HostGroupMember.host_id, HostGroupMember.group_id)
            .join(HostGroup, HostGroup.id == HostGroupMember.group_id)
            .where(HostGroupMember.tenant_id == tenant_id, HostGroupMember.host_id.in_(host_ids))
            .order_by(HostGroup.name, HostGroup.id)
        )
    )
    groups_of: dict[UUID, list[UUID]] = defaultdict(list)
    for host_id, group_id in memberships:
        groups_of[host_id].append(group_id)
    group_vars: dict[UUID, list[InventoryVariable]] = defaultdict(list)
    host_vars: dict[UUID, list[InventoryVariable]] = defaultdict(list)
    for row in await _variables_of(
        session,
        tenant_id=tenant_id,
        host_ids=host_ids,
        group_ids={group_id for _, group_id in memberships},
    ):
        if row.group_id is not None:
            group_vars[row.group_id].append(row)
        elif row.host_id is not None:
            host_vars[row.host_id].append(row)
    for host_id, environment in found.items():
        for row in [v for g in groups_of[host_id] for v in group_vars[g]] + host_vars[host_id]:
            value = row.secret_value if row.secret else row.value
            environment.put(row.name, value or "", secret=row.secret)
    return found
