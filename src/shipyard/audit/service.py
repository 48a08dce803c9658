"""The audit trail's database work: reading entries, streams, the retention period."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, delete, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.models import AuditEvent, Profile, Tenant, User
from shipyard.accounts.principal import Actor
from shipyard.audit.models import AuditStream
from shipyard.audit.schemas import (
    AuditActor,
    AuditEntryRead,
    AuditFilters,
    RetentionRead,
    RetentionUpdate,
    StreamCreate,
    StreamCreated,
    StreamRead,
    StreamUpdate,
    WebhookConfig,
)
from shipyard.db import tenant_clause
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.pagination import paginate

SECRET_BYTES = 32


def entry_read(entry: AuditEvent) -> AuditEntryRead:
    return AuditEntryRead(
        id=entry.id,
        at=entry.created_at,
        actor=AuditActor(
            id=entry.actor_profile_id,
            email=entry.actor_email or (None if entry.actor_profile_id else "system"),
        ),
        action=entry.action,
        resource_type=entry.resource_type,
        resource_id=entry.resource_id,
        changes=entry.changes or {},
        outcome=entry.outcome,
        ip_address=str(entry.ip_address) if entry.ip_address is not None else None,
        details=entry.details or {},
    )


def check_filters(filters: AuditFilters) -> None:
    if filters.since and filters.until and filters.since > filters.until:
        raise ValidationFailed("since must not be after until", field="since")


def filtered(session: AsyncSession, filters: AuditFilters) -> Select[AuditEvent]:
    """The tenant's entries matching ``filters`` (unordered)."""
    check_filters(filters)
    query = select(AuditEvent).where(tenant_clause(session, AuditEvent.tenant_id))
    if filters.actor_id is not None:
        query = query.where(AuditEvent.actor_profile_id == filters.actor_id)
    if filters.action:
        if filters.action.endswith("."):
            prefix = filters.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEvent.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.resource_type:
        query = query.where(AuditEvent.resource_type == filters.resource_type)
    if filters.resource_id is not None:
        query = query.where(AuditEvent.resource_id == filters.resource_id)
    if filters.outcome:
        query = query.where(AuditEvent.outcome == filters.outcome)
    if filters.since is not None:
        query = query.where(AuditEvent.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.created_at < filters.until)
    return query


async def list_entries(
    *, session: AsyncSession, filters: AuditFilters, limit: int, cursor: str | None
) -> tuple[list[AuditEntryRead], str | None]:
    """One page of the tenant's entries, newest first."""
    rows, next_cursor = await paginate(
        session,
        filtered(session, filters),
        created_at=AuditEvent.created_at,
        row_id=AuditEvent.id,
        limit=limit,
        cursor=cursor,
    )
    return [entry_read(row) for row in rows], next_cursor


async def read_entry(*, session: AsyncSession, entry_id: UUID) -> AuditEntryRead:
    entry = await session.scalar(
        select(AuditEvent).where(
            AuditEvent.id == entry_id, tenant_clause(session, AuditEvent.tenant_id)
        )
    )
    if entry is None:
        raise NotFound("audit entry not found")
    return entry_read(entry)


async def entries_after(
    *,
    session: AsyncSession,
    filters: AuditFilters,
    after: tuple[datetime, UUID] | None,
    before: datetime | None = None,
    limit: int,
) -> list[AuditEvent]:
    """Entries in order (oldest first) after the ``after`` position, younger than ``before``."""
    query = filtered(session, filters)
    if after is not None:
        query = query.where(tuple_(AuditEvent.created_at, AuditEvent.id) > tuple_(*after))
    if before is not None:
        query = query.where(AuditEvent.created_at < before)
    query = query.order_by(AuditEvent.created_at, AuditEvent.id).limit(limit)
    return list((await session.scalars(query)).all())


# --- streams ---------------------------------------------------------------------------------


def stream_read(stream: AuditStream) -> StreamRead:
    return StreamRead(
        id=stream.id,
        name=stream.name,
        type=stream.type,
        config=dict(stream.config or {}),
        enabled=stream.enabled,
        has_secret=bool(stream.secret),
        cursor_at=stream.cursor_at,
        last_error=stream.last_error,
        created_at=stream.created_at,
    )


async def _stream(session: AsyncSession, stream_id: UUID, *, lock: bool = False) -> AuditStream:
    query = select(AuditStream).where(
        AuditStream.id == stream_id, tenant_clause(session, AuditStream.tenant_id)
    )
    if lock:
        query = query.with_for_update()
    stream = await session.scalar(query)
    if stream is None:
        raise NotFound("audit stream not found")
    return stream


async def _name_free(session: AsyncSession, name: str, *, other_than: UUID | None = None) -> None:
    query = select(AuditStream.id).where(
        AuditStream.name == name, tenant_clause(session, AuditStream.tenant_id)
    )
    if other_than is not None:
        query = query.where(AuditStream.id != other_than)
    if await session.scalar(query) is not None:
        raise Conflict(f"an audit stream named {name!r} exists", code="name_taken")


async def list_streams(*, session: AsyncSession) -> list[StreamRead]:
    rows = await session.scalars(
        select(AuditStream)
        .where(tenant_clause(session, AuditStream.tenant_id))
        .order_by(AuditStream.name)
    )
    return [stream_read(row) for row in rows]


async def read_stream(*, session: AsyncSession, stream_id: UUID) -> StreamRead:
    return stream_read(await _stream(session, stream_id))


async def create_stream(
    *, session: AsyncSession, actor: Actor, data: StreamCreate, now: datetime
) -> StreamCreated:
    """Add a stream; it starts with the entries written from now on. A webhook stream gets a
    generated signing secret, answered once."""
    await _name_free(session, data.name)
    secret = secrets.token_urlsafe(SECRET_BYTES) if isinstance(data.config, WebhookConfig) else None
    stream = AuditStream(
        tenant_id=actor.tenant_id,
        name=data.name,
        type=data.type,
        config=data.config.model_dump(),
        secret=secret,
        enabled=data.enabled,
        cursor_at=now,
        cursor_id=None,
        created_by=actor.user_id,
    )
    session.add(stream)
    await session.flush()
    await session.refresh(stream)
    await audit(
        session,
        actor=actor,
        action="audit_stream.create",
        resource_type="audit_stream",
        resource_id=stream.id,
        details={"name": stream.name, "type": stream.type},
    )
    return StreamCreated(**stream_read(stream).model_dump(), secret=secret)


async def update_stream(
    *, session: AsyncSession, actor: Actor, stream_id: UUID, data: StreamUpdate
) -> StreamRead:
    stream = await _stream(session, stream_id, lock=True)
    fields = data.model_fields_set
    if data.name is not None and data.name != stream.name:
        await _name_free(session, data.name, other_than=stream.id)
        stream.name = data.name
    if data.config is not None:
        kind = "webhook" if isinstance(data.config, WebhookConfig) else "syslog"
        if kind != stream.type:
            raise ValidationFailed(f"this stream is a {stream.type} stream", field="config")
        stream.config = data.config.model_dump()
    if data.enabled is not None:
        stream.enabled = data.enabled
        if data.enabled:
            stream.last_error = None
    await session.flush()
    await session.refresh(stream)
    await audit(
        session,
        actor=actor,
        action="audit_stream.update",
        resource_type="audit_stream",
        resource_id=stream.id,
        details={"fields": sorted(fields)},
    )
    return stream_read(stream)


async def delete_stream(*, session: AsyncSession, actor: Actor, stream_id: UUID) -> None:
    stream = await _stream(session, stream_id, lock=True)
    await session.delete(stream)
    await audit(
        session,
        actor=actor,
        action="audit_stream.delete",
        resource_type="audit_stream",
        resource_id=stream_id,
        details={"name": stream.name},
    )


async def enabled_streams(*, session: AsyncSession) -> Sequence[tuple[UUID, UUID]]:
    """(stream id, tenant id) of every enabled stream (a system session)."""
    rows = await session.execute(
        select(AuditStream.id, AuditStream.tenant_id).where(AuditStream.enabled.is_(True))
    )
    return [(row[0], row[1]) for row in rows]


async def stream_for_sending(*, session: AsyncSession, stream_id: UUID) -> AuditStream | None:
    return await session.scalar(
        select(AuditStream).where(
            AuditStream.id == stream_id,
            AuditStream.enabled.is_(True),
            tenant_clause(session, AuditStream.tenant_id),
        )
    )


async def advance_stream(
    *,
    session: AsyncSession,
    stream_id: UUID,
    since: tuple[datetime | None, UUID | None],
    to: tuple[datetime, UUID] | None,
    error: str | None,
) -> bool:
    """Move the cursor from ``since`` to ``to`` (when given) and record ``error``; False when
    another sender moved it meanwhile (compare and set: nothing is skipped)."""
    values: dict[str, Any] = {"last_error": error}
    if to is not None:
        values["cursor_at"], values["cursor_id"] = to
    result = await session.execute(
        update(AuditStream)
        .where(
            AuditStream.id == stream_id,
            AuditStream.cursor_at.is_not_distinct_from(since[0]),
            AuditStream.cursor_id.is_not_distinct_from(since[1]),
        )
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


# How far a stream may read: entries of transactions still open would commit behind it.
_OLDEST_OPEN = text(
    "SELECT least(now() - make_interval(secs => :settle), "
    "(SELECT min(xact_start) FROM pg_stat_activity "
    " WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND state <> 'idle'))"
)


async def stream_horizon(*, session: AsyncSession, settle_seconds: float) -> datetime:
    """The time before which every entry has committed (``created_at`` is its transaction's
    start): the oldest open transaction's start, and never later than now - settle."""
    horizon: datetime = await session.scalar(_OLDEST_OPEN, {"settle": settle_seconds})
    return horizon


# --- retention -------------------------------------------------------------------------------


async def read_retention(
    *, session: AsyncSession, actor: Actor, default_days: int
) -> RetentionRead:
    days = await session.scalar(
        select(Tenant.audit_retention_days).where(Tenant.id == actor.tenant_id)
    )
    return RetentionRead(
        retention_days=days, effective_days=days or default_days, default_days=default_days
    )


async def set_retention(
    *, session: AsyncSession, actor: Actor, data: RetentionUpdate, default_days: int
) -> RetentionRead:
    tenant = await session.scalar(
        select(Tenant).where(Tenant.id == actor.tenant_id).with_for_update()
    )
    if tenant is None:
        raise NotFound("tenant not found")
    tenant.audit_retention_days = data.retention_days
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="audit_settings.update",
        resource_type="tenant",
        resource_id=tenant.id,
        details={"retention_days": data.retention_days},
    )
    return RetentionRead(
        retention_days=data.retention_days,
        effective_days=data.retention_days or default_days,
        default_days=default_days,
    )


async def delete_expired(*, session: AsyncSession, now: datetime, default_days: int) -> int:
    """Delete every tenant's entries older than its retention period (a system session)."""
    days = (
        select(Tenant.audit_retention_days)
        .where(Tenant.id == AuditEvent.tenant_id)
        .scalar_subquery()
    )
    period = func.make_interval(0, 0, 0, func.coalesce(days, default_days))
    result = await session.execute(delete(AuditEvent).where(AuditEvent.created_at < now - period))
    return int(getattr(result, "rowcount", 0) or 0)


async def profile_by_email(
    *, session: AsyncSession, email: str
) -> tuple[UUID, UUID, str, str] | None:
    """(profile id, tenant id, role, email) of the account ``email`` names (a system session),
    for recording its failed log-ins."""
    row = (
        await session.execute(
            select(Profile.id, Profile.tenant_id, Profile.role, User.email)
            .join(User, User.id == Profile.id)
            .where(func.lower(User.email) == email.lower())
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3])
