"""Freeze windows in the database: CRUD (one function per user action, with its audit entry),
which windows are in force, and the check every new run goes through.

A session, never the network. Times come from the caller. What "in force" means:

- a fixed window is in force at t when ``starts_at <= t < ends_at``;
- a recurring one when some occurrence start s (its cron line read in its zone, DST-correct:
  :mod:`shipyard.cron`) has ``s <= t < s + duration_minutes`` (elapsed minutes, so an
  occurrence that spans a clock change lasts exactly its duration); its optional
  ``starts_at``/``ends_at`` bound when occurrences may *start*;
- a window with ``template_ids`` or ``group_ids`` applies to runs of those templates or runs
  whose hosts (or explicit target groups) are in those groups (either matches); with neither,
  to every run of the tenant. A disabled window applies to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Select, column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import cron as crons
from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.db import tenant_clause
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.freeze.models import FreezeWindow
from shipyard.freeze.schemas import (
    ActiveWindows,
    FreezeOverride,
    FreezeWindowCreate,
    FreezeWindowRead,
    FreezeWindowUpdate,
    Occurrence,
)
from shipyard.hosts.models import HostGroup, HostGroupMember
from shipyard.pagination import paginate

NEXT_SHOWN = 3
MAX_UPCOMING = 50
# Read without importing the templates domain (it sits above this one).
_templates = table("templates", column("id"), column("tenant_id"))


class Frozen(Conflict):
    """A run that would start inside a freeze window (409, naming the window and its end)."""

    code = "frozen"

    def __init__(self, window: FreezeWindow, occurrence: Occurrence) -> None:
        ends = _local(occurrence.ends_at, window.timezone)
        super().__init__(
            f"deployments are frozen: freeze window '{window.name}' is in force until "
            f"{ends.isoformat()} ({window.timezone}); an admin may override it with a "
            "written reason (freeze_override)",
            details={
                "window_id": str(window.id),
                "window": window.name,
                "ends_at": occurrence.ends_at.isoformat(),
            },
        )
        self.window = window
        self.occurrence = occurrence

    @property
    def reason(self) -> str:
        """What a skipped fire or delivery records."""
        ends = _local(self.occurrence.ends_at, self.window.timezone)
        return f"freeze window '{self.window.name}' is in force until {ends.isoformat()}"


@dataclass(frozen=True)
class Overridden:
    """The window an admin's override let a run through, and the written reason."""

    window_id: UUID
    window_name: str
    reason: str


def _local(instant: datetime, tz: str) -> datetime:
    try:
        return crons.in_zone(instant, tz)
    except ValidationFailed:
        return instant


# --- when a window is in force (pure) ---------------------------------------------------------


def occurrence_at(window: FreezeWindow, at: datetime) -> Occurrence | None:
    """The occurrence of ``window`` in force at ``at`` (enabled or not), or None."""
    if window.kind == "fixed":
        if window.starts_at is None or window.ends_at is None:
            return None
        if window.starts_at <= at < window.ends_at:
            return _occurrence(window, window.starts_at, window.ends_at)
        return None
    if window.cron is None or not window.duration_minutes:
        return None
    length = timedelta(minutes=window.duration_minutes)
    # The first start strictly after at - length: in force iff it is not after ``at``.
    found = crons.next_times(
        window.cron, window.timezone, at - length, 1, window.starts_at, window.ends_at
    )
    if found and found[0] <= at:
        return _occurrence(window, found[0], found[0] + length)
    return None


def next_occurrences(window: FreezeWindow, after: datetime, count: int) -> list[Occurrence]:
    """The next ``count`` occurrences starting strictly after ``after``."""
    if window.kind == "fixed":
        if window.starts_at is not None and window.ends_at is not None and window.starts_at > after:
            return [_occurrence(window, window.starts_at, window.ends_at)][:count]
        return []
    if window.cron is None or not window.duration_minutes:
        return []
    length = timedelta(minutes=window.duration_minutes)
    starts = crons.next_times(
        window.cron, window.timezone, after, count, window.starts_at, window.ends_at
    )
    return [_occurrence(window, start, start + length) for start in starts]


def _occurrence(window: FreezeWindow, start: datetime, end: datetime) -> Occurrence:
    return Occurrence(
        window_id=window.id,
        name=window.name,
        starts_at=_local(start, window.timezone),
        ends_at=_local(end, window.timezone),
    )


def applies(window: FreezeWindow, *, template_id: UUID | None, group_ids: Iterable[UUID]) -> bool:
    """Whether ``window``'s scope covers a run of ``template_id`` touching ``group_ids``."""
    if not window.enabled:
        return False
    if not window.template_ids and not window.group_ids:
        return True
    if template_id is not None and template_id in window.template_ids:
        return True
    return bool(set(window.group_ids) & set(group_ids))


# --- reads ------------------------------------------------------------------------------------


def to_read(window: FreezeWindow, *, now: datetime) -> FreezeWindowRead:
    description = None
    if window.cron:
        try:
            description = crons.describe(window.cron)
        except ValidationFailed:
            description = window.cron
    try:
        active = occurrence_at(window, now) if window.enabled else None
        upcoming = next_occurrences(window, now, NEXT_SHOWN) if window.enabled else []
    except ValidationFailed:  # a zone gone from the system's tz database: shown, never fatal
        active, upcoming = None, []
    return FreezeWindowRead.model_validate(
        {
            "id": window.id,
            "name": window.name,
            "description": window.description,
            "kind": window.kind,
            "cron": window.cron,
            "cron_description": description,
            "duration_minutes": window.duration_minutes,
            "timezone": window.timezone,
            "starts_at": window.starts_at,
            "ends_at": window.ends_at,
            "template_ids": list(window.template_ids),
            "group_ids": list(window.group_ids),
            "enabled": window.enabled,
            "created_by": window.created_by,
            "created_at": window.created_at,
            "updated_at": window.updated_at,
            "active": active,
            "next": upcoming,
        }
    )


async def get_window(
    *, session: AsyncSession, window_id: UUID, for_update: bool = False
) -> FreezeWindow:
    statement = select(FreezeWindow).where(
        FreezeWindow.id == window_id, tenant_clause(session, FreezeWindow.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    window = await session.scalar(statement)
    if window is None:
        raise NotFound("freeze window not found", code="freeze_window_not_found")
    return window


async def read_window(*, session: AsyncSession, window_id: UUID, now: datetime) -> FreezeWindowRead:
    return to_read(await get_window(session=session, window_id=window_id), now=now)


async def list_windows(
    *, session: AsyncSession, limit: int, cursor: str | None, now: datetime
) -> tuple[list[FreezeWindowRead], str | None]:
    """A page of the tenant's windows, newest first, each with its occurrence now and next."""
    statement: Select[Any] = select(FreezeWindow).where(
        tenant_clause(session, FreezeWindow.tenant_id)
    )
    rows, next_cursor = await paginate(
        session,
        statement,
        created_at=FreezeWindow.created_at,
        row_id=FreezeWindow.id,
        limit=limit,
        cursor=cursor,
    )
    return [to_read(row, now=now) for row in rows], next_cursor


async def _tenant_windows(session: AsyncSession, tenant_id: UUID) -> list[FreezeWindow]:
    """The tenant's enabled windows (``session`` may be a system one: the tenant is explicit)."""
    return list(
        (
            await session.scalars(
                select(FreezeWindow)
                .where(FreezeWindow.tenant_id == tenant_id, FreezeWindow.enabled)
                .order_by(FreezeWindow.name)
            )
        ).all()
    )


async def active_windows(
    *, session: AsyncSession, tenant_id: UUID, at: datetime, count: int = 10
) -> ActiveWindows:
    """The windows in force at ``at`` and the next ``count`` occurrences of every window."""
    active: list[Occurrence] = []
    upcoming: list[Occurrence] = []
    for window in await _tenant_windows(session, tenant_id):
        try:
            found = occurrence_at(window, at)
            upcoming.extend(next_occurrences(window, at, count))
        except ValidationFailed:
            continue
        if found is not None:
            active.append(found)
    upcoming.sort(key=lambda occurrence: occurrence.starts_at)
    return ActiveWindows(at=at, active=active, upcoming=upcoming[:count])


# --- the check of a new run -------------------------------------------------------------------


async def _groups_of(session: AsyncSession, host_ids: Sequence[UUID]) -> set[UUID]:
    if not host_ids:
        return set()
    return set(
        await session.scalars(
            select(HostGroupMember.group_id).where(HostGroupMember.host_id.in_(list(host_ids)))
        )
    )


async def window_in_force(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    at: datetime,
    template_id: UUID | None,
    host_ids: Sequence[UUID],
    target_group_ids: Sequence[UUID] = (),
) -> tuple[FreezeWindow, Occurrence] | None:
    """The window (and its occurrence) that closes a run of ``template_id`` on ``host_ids``
    (and the target's groups) at ``at``; of several, the one that ends last."""
    windows = await _tenant_windows(session, tenant_id)
    if not windows:
        return None
    groups: set[UUID] | None = None
    found: tuple[FreezeWindow, Occurrence] | None = None
    for window in windows:
        if window.group_ids and groups is None:
            groups = set(target_group_ids) | await _groups_of(session, host_ids)
        if not applies(window, template_id=template_id, group_ids=groups or ()):
            continue
        try:
            occurrence = occurrence_at(window, at)
        except ValidationFailed:
            continue
        if occurrence is not None and (found is None or occurrence.ends_at > found[1].ends_at):
            found = (window, occurrence)
    return found


async def check_run(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    at: datetime,
    template_id: UUID | None,
    host_ids: Sequence[UUID],
    target_group_ids: Sequence[UUID] = (),
    override: FreezeOverride | None = None,
) -> Overridden | None:
    """Refuse (:class:`Frozen`) a run starting at ``at`` inside a window, unless ``override``
    (whose permission the caller checked); what was overridden, or None when nothing was."""
    found = await window_in_force(
        session=session,
        tenant_id=tenant_id,
        at=at,
        template_id=template_id,
        host_ids=host_ids,
        target_group_ids=target_group_ids,
    )
    if found is None:
        return None
    window, occurrence = found
    if override is None:
        raise Frozen(window, occurrence)
    return Overridden(window_id=window.id, window_name=window.name, reason=override.reason)


# --- actions ----------------------------------------------------------------------------------


async def _check_scope(
    session: AsyncSession, tenant_id: UUID, template_ids: list[UUID], group_ids: list[UUID]
) -> None:
    for name, ids, query in (
        (
            "template_ids",
            template_ids,
            select(_templates.c.id).where(
                _templates.c.id.in_(template_ids), _templates.c.tenant_id == tenant_id
            ),
        ),
        (
            "group_ids",
            group_ids,
            select(HostGroup.id).where(
                HostGroup.id.in_(group_ids), HostGroup.tenant_id == tenant_id
            ),
        ),
    ):
        if len(set(ids)) != len(ids):
            raise ValidationFailed("an id is listed twice", field=name)
        if not ids:
            continue
        known = set(await session.scalars(query))
        for index, value in enumerate(ids):
            if value not in known:
                what = "template" if name == "template_ids" else "host group"
                raise ValidationFailed(
                    f"no {what} {value} in your tenant",
                    field=f"{name}.{index}",
                    code="unknown_reference",
                )


def _check_timing(window: FreezeWindow) -> None:
    """The kind's fields (422 naming the field): a valid cron line, zone and period."""
    crons.zone(window.timezone)
    if window.kind == "recurring":
        if not window.cron:
            raise ValidationFailed("a recurring window needs a cron line", field="cron")
        window.cron = " ".join(window.cron.split())
        crons.expand(window.cron)
        if not window.duration_minutes:
            raise ValidationFailed(
                "a recurring window needs duration_minutes", field="duration_minutes"
            )
    else:
        if window.starts_at is None:
            raise ValidationFailed("a fixed window needs starts_at", field="starts_at")
        if window.ends_at is None:
            raise ValidationFailed("a fixed window needs ends_at", field="ends_at")
        # A fixed window is its period: no cron line, no duration.
        window.cron = None
        window.duration_minutes = None
    if (
        window.starts_at is not None
        and window.ends_at is not None
        and window.ends_at <= window.starts_at
    ):
        raise ValidationFailed("ends_at must be after starts_at", field="ends_at")


async def _name_free(session: AsyncSession, window: FreezeWindow) -> None:
    taken = await session.scalar(
        select(FreezeWindow.id).where(
            FreezeWindow.tenant_id == window.tenant_id,
            FreezeWindow.name == window.name,
            FreezeWindow.id != window.id if window.id is not None else FreezeWindow.id.is_not(None),
        )
    )
    if taken is not None:
        raise Conflict(f"a freeze window named '{window.name}' exists", code="name_taken")


async def create_window(
    *, session: AsyncSession, actor: Actor, data: FreezeWindowCreate, now: datetime
) -> FreezeWindowRead:
    """Check and store a freeze window; it applies to runs checked from now on."""
    window = FreezeWindow(
        tenant_id=actor.tenant_id,
        name=data.name.strip(),
        description=data.description,
        kind=data.kind,
        cron=data.cron,
        duration_minutes=data.duration_minutes,
        timezone=data.timezone,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        template_ids=list(data.template_ids),
        group_ids=list(data.group_ids),
        enabled=data.enabled,
        created_by=actor.user_id,
    )
    _check_timing(window)
    await _check_scope(session, actor.tenant_id, window.template_ids, window.group_ids)
    await _name_free(session, window)
    session.add(window)
    await session.flush()
    await session.refresh(window)
    await _audit(session, actor, "freeze_window.create", window, _summary(window))
    return to_read(window, now=now)


async def update_window(
    *,
    session: AsyncSession,
    actor: Actor,
    window_id: UUID,
    data: FreezeWindowUpdate,
    now: datetime,
) -> FreezeWindowRead:
    """Change the fields sent (checked as a create is)."""
    window = await get_window(session=session, window_id=window_id, for_update=True)
    fields = data.model_fields_set
    for name in sorted(fields):
        value = getattr(data, name)
        if value is None and name not in ("description", "starts_at", "ends_at", "cron"):
            continue  # a required field sent as null: unchanged
        if name == "name" and isinstance(value, str):
            value = value.strip()
        setattr(window, name, list(value) if isinstance(value, list) else value)
    _check_timing(window)
    await _check_scope(session, actor.tenant_id, window.template_ids, window.group_ids)
    await _name_free(session, window)
    await session.flush()
    await session.refresh(window)
    await _audit(session, actor, "freeze_window.update", window, {"fields": sorted(fields)})
    return to_read(window, now=now)


async def delete_window(*, session: AsyncSession, actor: Actor, window_id: UUID) -> None:
    """Delete a window; the runs that overrode it keep their reason."""
    window = await get_window(session=session, window_id=window_id, for_update=True)
    await session.delete(window)
    await session.flush()
    await _audit(session, actor, "freeze_window.delete", window, {"name": window.name})


def _summary(window: FreezeWindow) -> dict[str, Any]:
    return {
        "name": window.name,
        "kind": window.kind,
        "cron": window.cron,
        "duration_minutes": window.duration_minutes,
        "timezone": window.timezone,
        "starts_at": window.starts_at.isoformat() if window.starts_at else None,
        "ends_at": window.ends_at.isoformat() if window.ends_at else None,
        "template_ids": [str(value) for value in window.template_ids],
        "group_ids": [str(value) for value in window.group_ids],
        "enabled": window.enabled,
    }


async def _audit(
    session: AsyncSession, actor: Actor, action: str, window: FreezeWindow, details: dict[str, Any]
) -> None:
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="freeze_window",
        resource_id=window.id,
        details=details,
    )


async def window_name(*, session: AsyncSession, window_id: UUID) -> str | None:
    """The name of a window of the session's tenant (None: deleted since)."""
    name: str | None = await session.scalar(
        select(FreezeWindow.name).where(
            FreezeWindow.id == window_id, tenant_clause(session, FreezeWindow.tenant_id)
        )
    )
    return name
