"""Schedules in the database: one function per user action (with its audit entry) and reads.

A session, never the network. Times come from the caller (``now``: the runtime's clock), so
tests move time rather than wait for a cron minute. Parameter values are checked against the
template's parameters on save (a 422 names ``parameters.<name>``); secret ones are stored only
in the encrypted ``secret_parameters`` and shown as ``***``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import cron as crons
from shipyard.accounts.audit import audit
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.db import tenant_clause
from shipyard.errors import NotFound, ValidationFailed
from shipyard.pagination import paginate
from shipyard.schedules.models import Schedule, ScheduleFire
from shipyard.schedules.schemas import (
    FireRead,
    FireTime,
    NextTimes,
    PreviewRequest,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
)
from shipyard.templates import parameters as params
from shipyard.templates import service as templates
from shipyard.templates.models import Template

MASKED = "***"
TIMING_FIELDS = frozenset({"cron", "timezone", "starts_at", "ends_at", "enabled"})


def secret_parameters(schedule: Schedule) -> dict[str, str]:
    if not schedule.secret_parameters:
        return {}
    values: dict[str, str] = json.loads(schedule.secret_parameters)
    return values


def launch_values(schedule: Schedule) -> dict[str, Any]:
    """The values a fire launches with, secret ones in clear (for the launch only)."""
    return {**schedule.parameters, **secret_parameters(schedule)}


def _description(cron: str) -> str:
    try:
        return crons.describe(cron)
    except ValidationFailed:
        return cron


def to_read(schedule: Schedule, *, last_fire: ScheduleFire | None = None) -> ScheduleRead:
    """The schedule as the API shows it: secret values never leave."""
    shown = {**schedule.parameters, **dict.fromkeys(secret_parameters(schedule), MASKED)}
    local = None
    if schedule.next_fire_at is not None:
        try:
            local = crons.in_zone(schedule.next_fire_at, schedule.timezone)
        except ValidationFailed:
            local = None
    return ScheduleRead.model_validate(
        {
            "id": schedule.id,
            "template_id": schedule.template_id,
            "name": schedule.name,
            "cron": schedule.cron,
            "cron_description": _description(schedule.cron),
            "timezone": schedule.timezone,
            "parameters": shown,
            "enabled": schedule.enabled,
            "overlap_policy": schedule.overlap_policy,
            "missed_policy": schedule.missed_policy,
            "starts_at": schedule.starts_at,
            "ends_at": schedule.ends_at,
            "next_fire_at": schedule.next_fire_at,
            "next_fire_local": local,
            "last_fire_at": schedule.last_fire_at,
            "created_by": schedule.created_by,
            "created_at": schedule.created_at,
            "updated_at": schedule.updated_at,
            "last_fire": FireRead.model_validate(last_fire) if last_fire is not None else None,
        }
    )


async def get_schedule(
    *, session: AsyncSession, schedule_id: UUID, for_update: bool = False
) -> Schedule:
    statement = select(Schedule).where(
        Schedule.id == schedule_id, tenant_clause(session, Schedule.tenant_id)
    )
    if for_update:
        statement = statement.with_for_update()
    schedule = await session.scalar(statement)
    if schedule is None:
        raise NotFound("schedule not found", code="schedule_not_found")
    return schedule


async def last_fires(
    *, session: AsyncSession, schedule_ids: Sequence[UUID]
) -> dict[UUID, ScheduleFire]:
    """The newest fire of each schedule (one query for a whole list)."""
    if not schedule_ids:
        return {}
    rows = await session.scalars(
        select(ScheduleFire)
        .where(ScheduleFire.schedule_id.in_(schedule_ids))
        .order_by(ScheduleFire.schedule_id, ScheduleFire.fire_time.desc())
        .ext(distinct_on(ScheduleFire.schedule_id))
    )
    return {row.schedule_id: row for row in rows}


async def read_schedule(*, session: AsyncSession, schedule_id: UUID) -> ScheduleRead:
    schedule = await get_schedule(session=session, schedule_id=schedule_id)
    found = await last_fires(session=session, schedule_ids=[schedule.id])
    return to_read(schedule, last_fire=found.get(schedule.id))


async def list_schedules(
    *,
    session: AsyncSession,
    limit: int,
    cursor: str | None,
    template_id: UUID | None = None,
) -> tuple[list[ScheduleRead], str | None]:
    """A page of the tenant's schedules, newest first, each with its next run and last fire."""
    statement: Select[Any] = select(Schedule).where(tenant_clause(session, Schedule.tenant_id))
    if template_id is not None:
        statement = statement.where(Schedule.template_id == template_id)
    rows, next_cursor = await paginate(
        session,
        statement,
        created_at=Schedule.created_at,
        row_id=Schedule.id,
        limit=limit,
        cursor=cursor,
    )
    found = await last_fires(session=session, schedule_ids=[row.id for row in rows])
    return [to_read(row, last_fire=found.get(row.id)) for row in rows], next_cursor


async def list_fires(
    *, session: AsyncSession, schedule_id: UUID, limit: int, cursor: str | None
) -> tuple[list[FireRead], str | None]:
    """The schedule's fires (ran, queued, skipped, missed, failed), newest first."""
    await get_schedule(session=session, schedule_id=schedule_id)
    rows, next_cursor = await paginate(
        session,
        select(ScheduleFire).where(
            ScheduleFire.schedule_id == schedule_id,
            tenant_clause(session, ScheduleFire.tenant_id),
        ),
        created_at=ScheduleFire.created_at,
        row_id=ScheduleFire.id,
        limit=limit,
        cursor=cursor,
    )
    return [FireRead.model_validate(row) for row in rows], next_cursor


# --- timing ------------------------------------------------------------------------------------


def _times(
    cron: str,
    timezone: str,
    *,
    now: datetime,
    count: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> NextTimes:
    count = max(1, min(count, crons.MAX_COUNT))
    found = crons.next_times(cron, timezone, now, count, starts_at, ends_at)
    return NextTimes(
        cron=cron,
        cron_description=_description(cron),
        timezone=timezone,
        times=[FireTime(at=crons.in_zone(at, timezone), utc=at) for at in found],
    )


def preview(*, data: PreviewRequest, now: datetime) -> NextTimes:
    """The next fire times of a cron line before it is saved (the same checks as a save)."""
    _check_timing(data.cron, data.timezone, data.starts_at, data.ends_at, now=now)
    return _times(
        data.cron,
        data.timezone,
        now=now,
        count=data.count,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
    )


async def next_fire_times(
    *, session: AsyncSession, schedule_id: UUID, count: int, now: datetime
) -> NextTimes:
    """The schedule's next ``count`` fire times, in its zone and in UTC."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id)
    return _times(
        schedule.cron,
        schedule.timezone,
        now=now,
        count=count,
        starts_at=schedule.starts_at,
        ends_at=schedule.ends_at,
    )


def _check_timing(
    cron: str,
    timezone: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    *,
    now: datetime,
) -> None:
    crons.expand(cron)
    crons.zone(timezone)
    if ends_at is not None:
        if starts_at is not None and ends_at <= starts_at:
            raise ValidationFailed("ends_at must be after starts_at", field="ends_at")
        if ends_at <= now:
            raise ValidationFailed("ends_at is in the past", field="ends_at", code="time_in_past")
    if not crons.next_times(cron, timezone, now, 1, starts_at, None):
        raise ValidationFailed("this cron line never fires", field="cron", code="never_fires")
    if ends_at is not None and not crons.next_times(cron, timezone, now, 1, starts_at, ends_at):
        raise ValidationFailed("the schedule would end before its first fire time", field="ends_at")


def next_fire(schedule: Schedule, *, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (None: the schedule has ended)."""
    found = crons.next_times(
        schedule.cron, schedule.timezone, after, 1, schedule.starts_at, schedule.ends_at
    )
    return found[0] if found else None


def _arm(schedule: Schedule, *, now: datetime) -> None:
    """Set next_fire_at from ``now``: fires before now while paused or unsaved are not missed."""
    schedule.next_fire_at = next_fire(schedule, after=now) if schedule.enabled else None


# --- parameters --------------------------------------------------------------------------------


def _store_parameters(schedule: Schedule, template: Template, given: Mapping[str, Any]) -> None:
    """Check ``given`` against the template's parameters and store them (secrets encrypted).

    A secret sent as ``***`` keeps the value stored under its name (values are write-only).
    """
    definitions = [params.Parameter.model_validate(item) for item in template.parameters]
    secret_names = {item.name for item in definitions if item.type == "secret"}
    stored = secret_parameters(schedule)
    values = dict(given)
    for name in secret_names:
        if values.get(name) == MASKED:
            if name not in stored:
                raise ValidationFailed(
                    f"parameter {name} needs a value", field=f"parameters.{name}"
                )
            values[name] = stored[name]
    checked = params.check_launch(definitions, values, masked=MASKED)
    schedule.parameters = {
        name: checked.shown[name]
        for name in values
        if name not in secret_names and name in checked.shown
    }
    secrets = {name: checked.secret[name] for name in values if name in checked.secret}
    schedule.secret_parameters = json.dumps(secrets) if secrets else None


def _check_may_launch(actor: Actor, template: Template) -> None:
    """A schedule launches the template: who saves it must be allowed to launch it."""
    actor.require(Permission.RUN_DEPLOYMENTS)
    if template.admin_only:
        actor.require(Permission.LAUNCH_ADMIN_ONLY_TEMPLATES)


# --- actions -----------------------------------------------------------------------------------


async def create_schedule(
    *,
    session: AsyncSession,
    actor: Actor,
    template_id: UUID,
    data: ScheduleCreate,
    now: datetime,
) -> ScheduleRead:
    """Check and store a schedule on the template; it fires from its next time after ``now``."""
    template = await templates.get_template(session=session, template_id=template_id)
    _check_may_launch(actor, template)
    cron = " ".join(data.cron.split())
    _check_timing(cron, data.timezone, data.starts_at, data.ends_at, now=now)
    schedule = Schedule(
        tenant_id=actor.tenant_id,
        template_id=template.id,
        name=data.name,
        cron=cron,
        timezone=data.timezone,
        enabled=data.enabled,
        overlap_policy=data.overlap_policy,
        missed_policy=data.missed_policy,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        created_by=actor.user_id,
        parameters={},
    )
    _store_parameters(schedule, template, data.parameters)
    _arm(schedule, now=now)
    session.add(schedule)
    await session.flush()
    await session.refresh(schedule)
    await _audit(
        session,
        actor,
        "schedule.create",
        schedule,
        {"template_id": str(template.id), "cron": cron, "timezone": schedule.timezone},
    )
    return to_read(schedule)


async def update_schedule(
    *,
    session: AsyncSession,
    actor: Actor,
    schedule_id: UUID,
    data: ScheduleUpdate,
    now: datetime,
) -> ScheduleRead:
    """Change the fields sent; a change of timing re-arms the schedule from ``now``."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id, for_update=True)
    template = await templates.get_template(session=session, template_id=schedule.template_id)
    _check_may_launch(actor, template)
    fields = data.model_fields_set
    if "name" in fields:
        schedule.name = data.name
    if data.cron is not None:
        schedule.cron = " ".join(data.cron.split())
    if data.timezone is not None:
        schedule.timezone = data.timezone
    if "starts_at" in fields:
        schedule.starts_at = data.starts_at
    if "ends_at" in fields:
        schedule.ends_at = data.ends_at
    if data.enabled is not None:
        schedule.enabled = data.enabled
    if data.overlap_policy is not None:
        schedule.overlap_policy = data.overlap_policy
    if data.missed_policy is not None:
        schedule.missed_policy = data.missed_policy
    if fields & TIMING_FIELDS:
        _check_timing(
            schedule.cron, schedule.timezone, schedule.starts_at, schedule.ends_at, now=now
        )
        _arm(schedule, now=now)
    if data.parameters is not None:
        _store_parameters(schedule, template, data.parameters)
    await session.flush()
    await session.refresh(schedule)
    await _audit(session, actor, "schedule.update", schedule, {"fields": sorted(fields)})
    found = await last_fires(session=session, schedule_ids=[schedule.id])
    return to_read(schedule, last_fire=found.get(schedule.id))


async def pause_schedule(*, session: AsyncSession, actor: Actor, schedule_id: UUID) -> ScheduleRead:
    """Stop firing (nothing is recorded as missed while paused)."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id, for_update=True)
    schedule.enabled = False
    schedule.next_fire_at = None
    await session.flush()
    await session.refresh(schedule)
    await _audit(session, actor, "schedule.pause", schedule, {})
    return await read_schedule(session=session, schedule_id=schedule.id)


async def resume_schedule(
    *, session: AsyncSession, actor: Actor, schedule_id: UUID, now: datetime
) -> ScheduleRead:
    """Fire again from the next time after ``now`` (fire times while paused are not caught up)."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id, for_update=True)
    schedule.enabled = True
    _arm(schedule, now=now)
    await session.flush()
    await session.refresh(schedule)
    await _audit(session, actor, "schedule.resume", schedule, {})
    return await read_schedule(session=session, schedule_id=schedule.id)


async def delete_schedule(*, session: AsyncSession, actor: Actor, schedule_id: UUID) -> None:
    """Delete a schedule and its fire history; the runs it started stay."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id, for_update=True)
    await session.delete(schedule)
    await session.flush()
    await _audit(
        session, actor, "schedule.delete", schedule, {"template_id": str(schedule.template_id)}
    )


async def _audit(
    session: AsyncSession, actor: Actor, action: str, schedule: Schedule, details: dict[str, Any]
) -> None:
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="schedule",
        resource_id=schedule.id,
        details=details,
    )
