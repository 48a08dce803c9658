"""Hosts: CRUD, credentials, host-key trust, connection tests, and targets for the executor."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.principal import Principal
from shipyard.accounts.service import record_audit
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.hosts.executor import Executor, HostTarget, ProbeResult
from shipyard.hosts.keys import generate_key_pair, public_key_of
from shipyard.hosts.models import Host
from shipyard.hosts.schemas import HostCreate, HostFields, HostRead, HostUpdate
from shipyard.pagination import paginate

LOCAL_ADDRESS = "localhost"


def host_read(host: Host) -> HostRead:
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
        return await record_fingerprint_in(session, host_id=host_id, fingerprint=fingerprint)


async def record_fingerprint_in(session: AsyncSession, *, host_id: UUID, fingerprint: str) -> bool:
    result = await session.execute(
        update(Host)
        .where(Host.id == host_id, Host.host_key_fingerprint.is_(None))
        .values(host_key_fingerprint=fingerprint, pending_host_key_fingerprint=None)
        .returning(Host.id)
    )
    return result.first() is not None


async def get_host(session: AsyncSession, *, tenant_id: UUID, host_id: UUID) -> Host:
    host = await session.scalar(select(Host).where(Host.id == host_id, Host.tenant_id == tenant_id))
    if host is None:
        raise NotFound("host not found", code="host_not_found")
    return host


async def list_hosts(
    session: AsyncSession,
    *,
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


async def _check_name_free(
    session: AsyncSession, *, tenant_id: UUID, name: str, except_id: UUID | None = None
) -> None:
    statement = select(Host.id).where(Host.tenant_id == tenant_id, Host.name == name)
    if except_id is not None:
        statement = statement.where(Host.id != except_id)
    if await session.scalar(statement) is not None:
        raise Conflict(f"a host named {name!r} already exists", code="host_name_taken")


async def _apply(host: Host, data: HostFields, *, fields: set[str], settings: Settings) -> None:
    """Copy the sent ``fields`` of ``data`` onto ``host`` and check the result as a whole."""
    identity_changed = False
    for field in fields:
        value = getattr(data, field)
        if field in ("ip", "port") and value != getattr(host, field):
            identity_changed = True
        setattr(host, field, value)
    if host.type is None:
        host.type = "ssh"
    if host.port is None and host.type == "ssh":
        host.port = 22
    # A new address may well be another machine: trust its key afresh unless one is given.
    if identity_changed and "host_key_fingerprint" not in fields:
        host.host_key_fingerprint = None
        host.pending_host_key_fingerprint = None
    if "host_key_fingerprint" in fields:
        host.pending_host_key_fingerprint = None

    if host.type == "local":
        if not settings.allow_local_hosts:
            raise ValidationFailed(
                "local hosts are disabled on this server (SHIPYARD_ALLOW_LOCAL_HOSTS)",
                field="type",
                code="local_hosts_disabled",
            )
        if host.is_windows:
            raise ValidationFailed(
                "a local host runs on the Shipyard worker, which is not Windows",
                field="is_windows",
            )
    else:
        if not host.ip:
            raise ValidationFailed("an SSH host needs an address", field="ip")
        if not host.user:
            raise ValidationFailed("an SSH host needs a user name", field="user")

    if "private_key" in fields or ("private_key_passphrase" in fields and host.private_key):
        if host.private_key:
            host.public_key = await public_key_of(host.private_key, host.private_key_passphrase)
        elif "private_key" in fields:
            host.public_key = None
            host.private_key_passphrase = None
    if "auth_method" not in fields and ({"password", "private_key"} & fields):
        host.auth_method = None
    if host.auth_method is None:
        if host.private_key:
            host.auth_method = "key"
        elif host.password:
            host.auth_method = "password"
    if host.auth_method == "password" and not host.password:
        raise ValidationFailed("auth_method 'password' needs a password", field="password")
    if host.auth_method == "key" and not host.private_key:
        raise ValidationFailed("auth_method 'key' needs a private key", field="private_key")


def _audit_fields(fields: set[str]) -> list[str]:
    # Names of changed fields only: values of credentials never reach the audit log.
    return sorted(fields)


async def create_host(
    session: AsyncSession, *, principal: Principal, data: HostCreate, settings: Settings
) -> Host:
    fields = set(data.model_fields_set) - {"name", "type"}
    host = Host(tenant_id=principal.tenant_id, name=data.name, type=data.type, status="unknown")
    host.is_windows = False
    await _apply(
        host, data, fields={f for f in fields if getattr(data, f) is not None}, settings=settings
    )
    await _check_name_free(session, tenant_id=principal.tenant_id, name=data.name)
    session.add(host)
    await session.flush()
    await session.refresh(host)
    await record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="host.create",
        resource_type="host",
        resource_id=host.id,
        details={"name": host.name, "type": host.type, "fields": _audit_fields(fields)},
    )
    return host


async def update_host(
    session: AsyncSession,
    *,
    principal: Principal,
    host_id: UUID,
    data: HostUpdate,
    settings: Settings,
) -> Host:
    host = await get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    fields = set(data.model_fields_set)
    for required in ("name", "type", "is_windows"):
        if required in fields and getattr(data, required) is None:
            raise ValidationFailed(f"{required} cannot be null", field=required)
    if "name" in fields and data.name is not None and data.name != host.name:
        await _check_name_free(
            session, tenant_id=principal.tenant_id, name=data.name, except_id=host.id
        )
    await _apply(host, data, fields=fields, settings=settings)
    await session.flush()
    await session.refresh(host)
    await record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="host.update",
        resource_type="host",
        resource_id=host.id,
        details={"fields": _audit_fields(fields)},
    )
    return host


async def delete_host(session: AsyncSession, *, principal: Principal, host_id: UUID) -> None:
    host = await get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    await session.delete(host)
    await record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="host.delete",
        resource_type="host",
        resource_id=host_id,
        details={"name": host.name},
    )


async def generate_key(session: AsyncSession, *, principal: Principal, host_id: UUID) -> Host:
    """Give the host a new ed25519 key pair; the private half is stored encrypted only."""
    host = await get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
    if host.type == "local":
        raise ValidationFailed("local hosts do not use SSH keys", field="type")
    private, public = generate_key_pair(f"shipyard@{host.name}")
    host.private_key = private
    host.private_key_passphrase = None
    host.public_key = public
    host.auth_method = "key"
    await session.flush()
    await session.refresh(host)
    await record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="host.generate_key",
        resource_type="host",
        resource_id=host.id,
        details={"public_key": public},
    )
    return host


async def accept_host_key(
    session: AsyncSession, *, principal: Principal, host_id: UUID, fingerprint: str | None
) -> Host:
    """Trust the key the host presented at its last mismatch (the admin's explicit decision)."""
    host = await get_host(session, tenant_id=principal.tenant_id, host_id=host_id)
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
    await session.flush()
    await session.refresh(host)
    await record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="host.accept_host_key",
        resource_type="host",
        resource_id=host.id,
        details={"previous": previous, "accepted": pending},
    )
    return host


def apply_probe(host: Host, probe: ProbeResult) -> None:
    """Store a connection test's outcome on the host row (trust on first use included)."""
    host.status = probe.status
    host.status_message = probe.message
    host.last_checked_at = probe.checked_at
    host.round_trip_ms = probe.round_trip_ms
    if probe.os_info:
        host.os_info = probe.os_info
    if probe.status == "online":
        if host.host_key_fingerprint is None and probe.fingerprint:
            host.host_key_fingerprint = probe.fingerprint
        host.pending_host_key_fingerprint = None
    elif probe.status == "host_key_mismatch":
        host.pending_host_key_fingerprint = probe.fingerprint


async def check_host(
    session: AsyncSession, *, tenant_id: UUID, host_id: UUID, executor: Executor
) -> tuple[Host, ProbeResult]:
    """Connect, authenticate, run the probe, and store the outcome on the host."""
    host = await get_host(session, tenant_id=tenant_id, host_id=host_id)
    probe = await executor.probe(build_target(host))
    apply_probe(host, probe)
    await session.flush()
    await session.refresh(host)
    return host, probe


async def tenant_host_ids(session: AsyncSession, *, tenant_id: UUID) -> list[UUID]:
    return list((await session.scalars(select(Host.id).where(Host.tenant_id == tenant_id))).all())
