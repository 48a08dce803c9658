"""Hosts: the database side of every host action (CRUD, credentials, host-key trust, test results).

Services take a session and never reach a host: a connection test is a flow
(:mod:`shipyard.hosts.flows`) that calls :func:`host_target` before it talks SSH and
:func:`record_host_test` after. Each action checks everything before it writes, so a caller that
reports a refusal and carries on (the web forms) commits nothing half-done.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.hosts.executor import HostTarget, ProbeResult
from shipyard.hosts.inventory import HostInventory, host_inventories, set_host_inventory
from shipyard.hosts.keys import generate_key_pair, public_key_of
from shipyard.hosts.models import Host
from shipyard.hosts.schemas import (
    HostCreate,
    HostFields,
    HostRead,
    HostTestRead,
    HostTestsQueued,
    HostUpdate,
)
from shipyard.jobs import enqueue, waiting_job_with_queueing_lock
from shipyard.notifications.events import Event, emit
from shipyard.pagination import Page, paginate

LOCAL_ADDRESS = "localhost"
# Host fields stored beside the row (hosts.inventory), not in its columns.
INVENTORY_FIELDS = frozenset({"tags", "variables"})
# Registered by ``shipyard.hosts.tasks`` (``tasks.task("test_all_hosts")`` of ``TaskSet("hosts")``).
TEST_ALL_TASK = "hosts:test_all_hosts"
# What an admin sets through create and update; the rest of a row is its test state.
EDITABLE = (
    "type",
    "description",
    "is_windows",
    "ip",
    "port",
    "user",
    "auth_method",
    "password",
    "private_key",
    "private_key_passphrase",
    "public_key",
    "host_key_fingerprint",
    "pending_host_key_fingerprint",
    "pool",
)


def host_read(host: Host, inventory: HostInventory | None = None) -> HostRead:
    inventory = inventory or HostInventory()
    return HostRead.model_validate(
        {
            **{
                column: getattr(host, column)
                for column in HostRead.model_fields
                if hasattr(host, column)
            },
            "has_password": host.password is not None,
            "has_private_key": host.private_key is not None,
            "has_private_key_passphrase": host.private_key_passphrase is not None,
            "tags": inventory.tags,
            "variables": inventory.variables,
        }
    )


def build_target(host: Host, *, settings: Settings | None = None) -> HostTarget:
    """The executor's view of ``host``: only the credentials its ``auth_method`` uses.

    ``settings`` is accepted for symmetry with other builders; nothing in it changes a target.
    """
    if host.type == "local":
        return HostTarget(
            address=LOCAL_ADDRESS, port=0, type="local", name=host.name, host_id=host.id
        )
    method = host.auth_method or ("key" if host.private_key else "password")
    return HostTarget(
        address=host.ip or "",
        port=host.port or 22,
        user=host.user,
        password=host.password if method == "password" else None,
        private_key=host.private_key if method == "key" else None,
        passphrase=host.private_key_passphrase if method == "key" else None,
        expected_fingerprint=host.host_key_fingerprint,
        is_windows=host.is_windows,
        type="ssh",
        name=host.name,
        host_id=host.id,
    )


async def record_fingerprint(
    *, db: Database, tenant_id: UUID, host_id: UUID, fingerprint: str
) -> bool:
    """Trust on first use: store ``fingerprint`` unless the host already has one.

    Returns True when it was stored. Safe to call on every connect (a conditional UPDATE).
    """
    async with db.session(tenant_id=tenant_id) as session:
        result = await session.execute(
            update(Host)
            .where(Host.id == host_id, Host.host_key_fingerprint.is_(None))
            .values(host_key_fingerprint=fingerprint, pending_host_key_fingerprint=None)
            .returning(Host.id)
        )
        return result.first() is not None


# --- reading ---------------------------------------------------------------------------------


async def get_host(*, session: AsyncSession, tenant_id: UUID, host_id: UUID) -> Host:
    host = await session.scalar(select(Host).where(Host.id == host_id, Host.tenant_id == tenant_id))
    if host is None:
        raise NotFound("host not found", code="host_not_found")
    return host


async def _read(session: AsyncSession, host: Host) -> HostRead:
    """The host as the API shows it, tags and variables included (secrets without values)."""
    inventories = await host_inventories(session, tenant_id=host.tenant_id, host_ids=[host.id])
    return host_read(host, inventories[host.id])


async def read_host(*, session: AsyncSession, tenant_id: UUID, host_id: UUID) -> HostRead:
    return await _read(
        session, await get_host(session=session, tenant_id=tenant_id, host_id=host_id)
    )


# ``session`` may still be passed by position: the deployment wizard does (web/routes/wizard.py).
async def list_hosts(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    status: str | None,
    host_type: str | None,
    search: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Host], str | None]:
    statement = select(Host).where(Host.tenant_id == tenant_id)
    if status:
        statement = statement.where(Host.status == status)
    if host_type:
        statement = statement.where(Host.type == host_type)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(Host.name.ilike(f"%{escaped}%", escape="\\"))
    return await paginate(
        session,
        statement,
        created_at=Host.created_at,
        row_id=Host.id,
        limit=limit,
        cursor=cursor,
    )


async def read_hosts(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    status: str | None = None,
    host_type: str | None = None,
    search: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[HostRead]:
    """One page of the tenant's hosts, newest first, as the API and the pages show them."""
    rows, next_cursor = await list_hosts(
        session=session,
        tenant_id=tenant_id,
        status=status,
        host_type=host_type,
        search=search,
        limit=limit,
        cursor=cursor,
    )
    inventories = await host_inventories(
        session, tenant_id=tenant_id, host_ids=[row.id for row in rows]
    )
    return Page[HostRead](
        items=[host_read(row, inventories[row.id]) for row in rows], next_cursor=next_cursor
    )


# --- create, update, delete --------------------------------------------------------------------


async def _check_name_free(
    session: AsyncSession, *, tenant_id: UUID, name: str, except_id: UUID | None = None
) -> None:
    statement = select(Host.id).where(Host.tenant_id == tenant_id, Host.name == name)
    if except_id is not None:
        statement = statement.where(Host.id != except_id)
    if await session.scalar(statement) is not None:
        raise Conflict(f"a host named {name!r} already exists", code="host_name_taken")


# A public key derived (by the flow, before any transaction) from (private key, passphrase).
DerivedKey = tuple[str, str | None, str]


async def _resolve(
    host: Host,
    data: HostFields,
    *,
    fields: set[str],
    settings: Settings,
    derived_key: DerivedKey | None = None,
) -> dict[str, Any]:
    """The editable columns of ``host`` once the sent ``fields`` of ``data`` apply, checked as
    a whole. Nothing is written to ``host``: a refusal leaves the row as it was."""
    state: dict[str, Any] = {column: getattr(host, column) for column in EDITABLE}
    identity_changed = False
    for field in fields:
        value = getattr(data, field)
        if field in ("ip", "port") and value != state[field]:
            identity_changed = True
        state[field] = value
    if state["type"] is None:
        state["type"] = "ssh"
    if state["port"] is None and state["type"] == "ssh":
        state["port"] = 22
    # A new address may well be another machine: trust its key afresh unless one is given.
    if identity_changed and "host_key_fingerprint" not in fields:
        state["host_key_fingerprint"] = None
        state["pending_host_key_fingerprint"] = None
    if "host_key_fingerprint" in fields:
        state["pending_host_key_fingerprint"] = None

    if state["type"] == "local":
        if not settings.allow_local_hosts:
            raise ValidationFailed(
                "local hosts are disabled on this server (SHIPYARD_ALLOW_LOCAL_HOSTS)",
                field="type",
                code="local_hosts_disabled",
            )
        if state["is_windows"]:
            raise ValidationFailed(
                "a local host runs on the Shipyard worker, which is not Windows",
                field="is_windows",
            )
    else:
        if not state["ip"]:
            raise ValidationFailed("an SSH host needs an address", field="ip")
        if not state["user"]:
            raise ValidationFailed("an SSH host needs a user name", field="user")
        # The address was checked against the outbound policy by the flow (a DNS lookup, outside
        # this transaction); the executor checks again whenever it connects.

    if "private_key" in fields or ("private_key_passphrase" in fields and state["private_key"]):
        if state["private_key"]:
            inputs = (state["private_key"], state["private_key_passphrase"])
            if derived_key is not None and derived_key[:2] == inputs:
                state["public_key"] = derived_key[2]
            else:
                # Only when the flow could not derive it first (a new passphrase for the stored
                # key): the KDF then runs in a thread while this transaction waits.
                state["public_key"] = await public_key_of(*inputs)
        elif "private_key" in fields:
            state["public_key"] = None
            state["private_key_passphrase"] = None
    if "auth_method" not in fields and ({"password", "private_key"} & fields):
        state["auth_method"] = None
    if state["auth_method"] is None:
        if state["private_key"]:
            state["auth_method"] = "key"
        elif state["password"]:
            state["auth_method"] = "password"
    if state["auth_method"] == "password" and not state["password"]:
        raise ValidationFailed("auth_method 'password' needs a password", field="password")
    if state["auth_method"] == "key" and not state["private_key"]:
        raise ValidationFailed("auth_method 'key' needs a private key", field="private_key")
    return state


def _assign(host: Host, state: dict[str, Any]) -> None:
    for column, value in state.items():
        if getattr(host, column) != value:
            setattr(host, column, value)


def _new_key_pair(host: Host) -> str:
    """Give ``host`` a new ed25519 key pair (the private half is stored encrypted only)."""
    if host.type == "local":
        raise ValidationFailed("local hosts do not use SSH keys", field="type")
    private, public = generate_key_pair(f"shipyard@{host.name}")
    host.private_key = private
    host.private_key_passphrase = None
    host.public_key = public
    host.auth_method = "key"
    return public


async def _audit_new_key(session: AsyncSession, *, actor: Actor, host: Host, public: str) -> None:
    await audit(
        session,
        actor=actor,
        action="host.generate_key",
        resource_type="host",
        resource_id=host.id,
        details={"public_key": public},
    )


async def _saved(session: AsyncSession, host: Host) -> HostRead:
    await session.flush()
    await session.refresh(host)
    return await _read(session, host)


async def insert_host(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    data: HostCreate,
    settings: Settings,
    derived_key: DerivedKey | None = None,
) -> Host:
    """Check and add the host row with its tags and variables; the caller audits."""
    fields = set(data.model_fields_set) - {"name", "type"} - INVENTORY_FIELDS
    host = Host(tenant_id=tenant_id, name=data.name, type=data.type, status="unknown")
    host.is_windows = False
    state = await _resolve(
        host,
        data,
        fields={f for f in fields if getattr(data, f) is not None},
        settings=settings,
        derived_key=derived_key,
    )
    await _check_name_free(session, tenant_id=tenant_id, name=data.name)
    _assign(host, state)
    session.add(host)
    await session.flush()
    await set_host_inventory(
        session,
        tenant_id=tenant_id,
        host_id=host.id,
        tags=data.tags,
        variables=data.variables,
    )
    return host


async def create_host(
    *,
    session: AsyncSession,
    actor: Actor,
    data: HostCreate,
    settings: Settings,
    generate_key: bool = False,
    derived_key: DerivedKey | None = None,
) -> HostRead:
    """Add a host; with ``generate_key``, give it a new key pair too (both audited)."""
    host = await insert_host(
        session=session,
        tenant_id=actor.tenant_id,
        data=data,
        settings=settings,
        derived_key=derived_key,
    )
    public = _new_key_pair(host) if generate_key else None
    read = await _saved(session, host)
    fields = set(data.model_fields_set) - {"name", "type"} - INVENTORY_FIELDS
    await audit(
        session,
        actor=actor,
        action="host.create",
        resource_type="host",
        resource_id=host.id,
        # Names of the fields sent only: credentials' values never reach the audit log.
        details={
            "name": host.name,
            "type": host.type,
            "fields": sorted(fields | (INVENTORY_FIELDS & data.model_fields_set)),
        },
    )
    if public is not None:
        await _audit_new_key(session, actor=actor, host=host, public=public)
    return read


async def change_host(
    *,
    session: AsyncSession,
    host: Host,
    data: HostUpdate,
    settings: Settings,
    derived_key: DerivedKey | None = None,
) -> None:
    """Check and apply the sent fields of ``data`` to ``host``; the caller audits."""
    fields = set(data.model_fields_set)
    for required in ("name", "type", "is_windows"):
        if required in fields and getattr(data, required) is None:
            raise ValidationFailed(f"{required} cannot be null", field=required)
    if "name" in fields and data.name is not None and data.name != host.name:
        await _check_name_free(session, tenant_id=host.tenant_id, name=data.name, except_id=host.id)
    for optional in INVENTORY_FIELDS & fields:
        if getattr(data, optional) is None:
            raise ValidationFailed(f"{optional} cannot be null", field=optional)
    state = await _resolve(
        host,
        data,
        fields=fields - {"name"} - INVENTORY_FIELDS,
        settings=settings,
        derived_key=derived_key,
    )
    if "name" in fields and data.name is not None:
        host.name = data.name
    _assign(host, state)
    await set_host_inventory(
        session,
        tenant_id=host.tenant_id,
        host_id=host.id,
        tags=data.tags,
        variables=data.variables,
    )


async def update_host(
    *,
    session: AsyncSession,
    actor: Actor,
    host_id: UUID,
    data: HostUpdate,
    settings: Settings,
    generate_key: bool = False,
    derived_key: DerivedKey | None = None,
) -> HostRead:
    """Change the sent fields (``null`` clears); with ``generate_key``, replace the key pair."""
    host = await get_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)
    await change_host(
        session=session, host=host, data=data, settings=settings, derived_key=derived_key
    )
    public = _new_key_pair(host) if generate_key else None
    read = await _saved(session, host)
    await audit(
        session,
        actor=actor,
        action="host.update",
        resource_type="host",
        resource_id=host.id,
        details={"fields": sorted(data.model_fields_set)},
    )
    if public is not None:
        await _audit_new_key(session, actor=actor, host=host, public=public)
    return read


async def delete_host(*, session: AsyncSession, actor: Actor, host_id: UUID) -> None:
    host = await get_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)
    await session.delete(host)
    await audit(
        session,
        actor=actor,
        action="host.delete",
        resource_type="host",
        resource_id=host_id,
        details={"name": host.name},
    )


# --- keys and trust ----------------------------------------------------------------------------


async def generate_key(*, session: AsyncSession, actor: Actor, host_id: UUID) -> HostRead:
    """Give the host a new ed25519 key pair; the private half is stored encrypted only."""
    host = await get_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)
    public = _new_key_pair(host)
    read = await _saved(session, host)
    await _audit_new_key(session, actor=actor, host=host, public=public)
    return read


async def accept_host_key(
    *, session: AsyncSession, actor: Actor, host_id: UUID, fingerprint: str | None
) -> HostRead:
    """Trust the key the host presented at its last mismatch (the admin's explicit decision)."""
    host = await get_host(session=session, tenant_id=actor.tenant_id, host_id=host_id)
    pending = host.pending_host_key_fingerprint
    if pending is None:
        raise Conflict(
            "this host has presented no new host key; test it first",
            code="no_pending_host_key",
        )
    if fingerprint is not None and fingerprint != pending:
        raise Conflict(
            f"the host presented {pending}, not {fingerprint}; test it again and compare",
            code="host_key_changed",
            details={"pending": pending},
        )
    previous = host.host_key_fingerprint
    host.host_key_fingerprint = pending
    host.pending_host_key_fingerprint = None
    host.status = "unknown"
    host.status_message = f"new host key {pending} accepted; test the host to check it"
    read = await _saved(session, host)
    await audit(
        session,
        actor=actor,
        action="host.accept_host_key",
        resource_type="host",
        resource_id=host.id,
        details={"previous": previous, "accepted": pending},
    )
    return read


# --- connection tests (the database halves; the probe itself is in hosts/flows.py) ------------


async def host_target(*, session: AsyncSession, tenant_id: UUID, host_id: UUID) -> HostTarget:
    """What a connection test of one host connects to."""
    return build_target(await get_host(session=session, tenant_id=tenant_id, host_id=host_id))


async def tenant_targets(*, session: AsyncSession, tenant_id: UUID) -> list[HostTarget]:
    """What a test of every host of the tenant connects to."""
    hosts = (await session.scalars(select(Host).where(Host.tenant_id == tenant_id))).all()
    return [build_target(host) for host in hosts]


def _same_machine(host: Host, target: HostTarget) -> bool:
    """Whether ``host`` still names what ``target`` reached (not moved or re-keyed meanwhile)."""
    now = build_target(host)
    return (now.type, now.address, now.port, now.expected_fingerprint) == (
        target.type,
        target.address,
        target.port,
        target.expected_fingerprint,
    )


async def store_probe(
    *, session: AsyncSession, tenant_id: UUID, target: HostTarget, probe: ProbeResult
) -> tuple[Host | None, bool]:
    """Store a connection test's outcome on its host (trust on first use included).

    Returns the host (None if it was deleted during the test) and whether its key was trusted
    now. A host edited to another address or key during the test keeps its row as it is: the
    outcome describes a machine it no longer names.
    """
    host = await session.scalar(
        select(Host).where(Host.id == target.host_id, Host.tenant_id == tenant_id)
    )
    if host is None or not _same_machine(host, target):
        return host, False
    trusted = False
    await _notify_transition(session, host, probe)
    host.status = probe.status
    host.status_message = probe.message
    host.last_checked_at = probe.checked_at
    host.round_trip_ms = probe.round_trip_ms
    if probe.os_info:
        host.os_info = probe.os_info
    if probe.status == "online":
        if host.host_key_fingerprint is None and probe.fingerprint:
            host.host_key_fingerprint = probe.fingerprint
            trusted = True
        host.pending_host_key_fingerprint = None
    elif probe.status == "host_key_mismatch":
        host.pending_host_key_fingerprint = probe.fingerprint
    await session.flush()
    await session.refresh(host)
    return host, trusted


async def _notify_transition(session: AsyncSession, host: Host, probe: ProbeResult) -> None:
    """``host.offline`` when a host goes offline, ``host.key_changed`` when it shows a new
    key: once per transition, not on every check."""
    if probe.status == "offline" and host.status != "offline":
        name, detail = "host.offline", probe.message
    elif (
        probe.status == "host_key_mismatch"
        and host.pending_host_key_fingerprint != probe.fingerprint
    ):
        name = "host.key_changed"
        detail = f"expected {host.host_key_fingerprint}, the host showed {probe.fingerprint}"
    else:
        return
    await emit(
        session,
        Event(
            name=name,
            tenant_id=host.tenant_id,
            subject_type="host",
            subject_id=host.id,
            title=f"Host {host.name}",
            status=probe.status,
            triggered_by="connection test",
            path=f"/hosts/{host.id}",
            detail=detail,
        ),
    )


async def record_host_test(
    *, session: AsyncSession, actor: Actor, target: HostTarget, probe: ProbeResult
) -> HostTestRead:
    """Store the outcome of a connection test ``actor`` asked for, and audit it."""
    host, trusted = await store_probe(
        session=session, tenant_id=actor.tenant_id, target=target, probe=probe
    )
    if host is None:
        raise NotFound("host not found (deleted during its test)", code="host_not_found")
    details: dict[str, Any] = {"status": probe.status, "error_code": probe.error_code}
    if trusted:
        # Trust on first use is a security decision: say who made the host trusted.
        details["trusted_fingerprint"] = probe.fingerprint
    await audit(
        session,
        actor=actor,
        action="host.test",
        resource_type="host",
        resource_id=host.id,
        details=details,
    )
    return HostTestRead(
        status=probe.status,
        message=probe.message,
        error_code=probe.error_code,
        round_trip_ms=probe.round_trip_ms,
        os_info=probe.os_info,
        presented_fingerprint=probe.fingerprint,
        checked_at=probe.checked_at,
        host=await _read(session, host),
    )


async def queue_host_tests(*, session: AsyncSession, actor: Actor) -> HostTestsQueued:
    """Queue a test of every host of the tenant (``hosts:test_all_hosts``), and audit it."""
    count = len(
        (await session.scalars(select(Host.id).where(Host.tenant_id == actor.tenant_id))).all()
    )
    # One waiting run per tenant is enough: a second request joins the queued one.
    lock = f"hosts-test-all-{actor.tenant_id}"
    job_id = await waiting_job_with_queueing_lock(session, lock=lock)
    joined = job_id is not None
    if job_id is None:
        job_id = await enqueue(
            session,
            task=TEST_ALL_TASK,
            args={"tenant_id": str(actor.tenant_id)},
            queueing_lock=lock,
        )
    await audit(
        session,
        actor=actor,
        action="host.test_all",
        resource_type="host",
        details={"job_id": job_id, "hosts": count, "joined_waiting_job": joined},
    )
    return HostTestsQueued(job_id=job_id, hosts=count)
