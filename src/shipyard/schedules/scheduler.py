"""The scheduler's work in one transaction: fire what is due, release queued runs.

Every worker and every ``serve`` runs the tick (:mod:`shipyard.schedules.tasks`); any number of
them may run it at once. What keeps a fire to at most once is the database, not timing:

- due schedules are taken with ``FOR UPDATE SKIP LOCKED`` (two ticks never work on the same
  schedule at the same time; the other one takes the next schedule instead of waiting);
- each fire time is a row of ``schedule_fires`` inserted with ``ON CONFLICT (schedule_id,
  fire_time) DO NOTHING``: only the transaction whose insert succeeded launches the run, in
  that same transaction. A tick that finds the row already there (a schedule re-armed by an
  edit or a resume racing a tick) launches nothing.

The run is created by :func:`shipyard.templates.triggered.launch_from_trigger`: no network
(the commit is resolved by the worker at checkout).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.deployments import service as deployments
from shipyard.deployments.models import Deployment
from shipyard.errors import ShipyardError
from shipyard.schedules import cron as crons
from shipyard.schedules import service
from shipyard.schedules.models import Schedule, ScheduleFire
from shipyard.templates.triggered import launch_from_trigger

logger = logging.getLogger(__name__)

# A fire noticed more than this late was missed (Shipyard was down): the downtime policy
# applies to it. Within it, it is simply a fire (a busy tick, a worker restart).
GRACE = timedelta(seconds=60)
# Missed fires recorded per schedule after one downtime; beyond it one row says how many more.
MAX_MISSED_RECORDED = 100
# Schedules taken per transaction.
BATCH = 50
_STEP = 200
_MAX_ROUNDS = 50
RUNNING = ("pending", "in_progress")


@dataclass
class TickResult:
    fired: int = 0
    launched: list[UUID] = field(default_factory=list)
    released: list[UUID] = field(default_factory=list)
    schedules: int = 0


def _launched_by(schedule: Schedule) -> dict[str, Any]:
    return {"kind": "schedule", "id": str(schedule.id), "name": schedule.name or schedule.cron}


def _due_times(schedule: Schedule, now: datetime) -> tuple[list[datetime], int | None]:
    """The fire times from ``next_fire_at`` up to ``now``: at most MAX_MISSED_RECORDED + 1 (the
    newest ones), and how many older ones were left out (None: too many to count)."""
    assert schedule.next_fire_at is not None
    times = [schedule.next_fire_at]
    dropped: int | None = 0
    step = 2  # usually the next time is already ahead: walk little, then more
    for round_ in range(_MAX_ROUNDS + 1):
        if round_ == _MAX_ROUNDS:
            # A very long downtime of a frequent schedule: walk only its last day.
            times, dropped = [], None
            found = crons.next_times(
                schedule.cron,
                schedule.timezone,
                now - timedelta(days=1),
                MAX_MISSED_RECORDED + 1,
                schedule.starts_at,
                schedule.ends_at,
            )
        else:
            found = crons.next_times(
                schedule.cron,
                schedule.timezone,
                times[-1],
                step,
                schedule.starts_at,
                schedule.ends_at,
            )
        later = [at for at in found if at <= now]
        times.extend(later)
        if len(times) > MAX_MISSED_RECORDED + 1:
            if dropped is not None:
                dropped += len(times) - (MAX_MISSED_RECORDED + 1)
            times = times[-(MAX_MISSED_RECORDED + 1) :]
        if len(later) < len(found) or not found:
            break
        step = min(step * 4, _STEP)
    return times, dropped


async def _running_run(session: AsyncSession, template_id: UUID) -> Deployment | None:
    deployment: Deployment | None = await session.scalar(
        select(Deployment)
        .where(Deployment.template_id == template_id, Deployment.status.in_(RUNNING))
        .order_by(Deployment.created_at)
        .limit(1)
    )
    return deployment


async def _held_run(session: AsyncSession, template_id: UUID) -> Deployment | None:
    """A run of the template queued by a schedule and not released yet."""
    deployment: Deployment | None = await session.scalar(
        select(Deployment)
        .join(ScheduleFire, ScheduleFire.deployment_id == Deployment.id)
        .where(
            Deployment.template_id == template_id,
            Deployment.status == "scheduled",
            ScheduleFire.verdict == "queued",
        )
        .order_by(ScheduleFire.fire_time)
        .limit(1)
    )
    return deployment


async def _claim(
    session: AsyncSession, schedule: Schedule, fire_time: datetime, verdict: str, reason: str | None
) -> UUID | None:
    """Insert the fire row; its id when this transaction is the one that fires it."""
    inserted = await session.execute(
        insert(ScheduleFire)
        .values(
            tenant_id=schedule.tenant_id,
            schedule_id=schedule.id,
            fire_time=fire_time,
            verdict=verdict,
            reason=reason,
        )
        .on_conflict_do_nothing(index_elements=["schedule_id", "fire_time"])
        .returning(ScheduleFire.id)
    )
    fire_id: UUID | None = inserted.scalar_one_or_none()
    return fire_id


async def _set_fire(
    session: AsyncSession,
    fire_id: UUID,
    *,
    verdict: str,
    reason: str | None,
    deployment_id: UUID | None = None,
) -> None:
    await session.execute(
        update(ScheduleFire)
        .where(ScheduleFire.id == fire_id)
        .values(verdict=verdict, reason=reason, deployment_id=deployment_id)
    )


async def _fire(
    session: AsyncSession,
    schedule: Schedule,
    fire_time: datetime,
    *,
    settings: Settings,
    result: TickResult,
    note: str | None = None,
) -> None:
    """Fire ``schedule`` at ``fire_time`` once: record it and, per the overlap policy, launch."""
    fire_id = await _claim(session, schedule, fire_time, "ran", note)
    if fire_id is None:
        return  # another transaction fired this time already
    result.fired += 1
    running = await _running_run(session, schedule.template_id)
    policy = schedule.overlap_policy
    if running is not None and policy == "skip":
        await _set_fire(
            session,
            fire_id,
            verdict="skipped",
            reason=f"the previous run {running.id} is still {running.status} (overlap policy skip)",
        )
        return
    held = policy == "queue" and (
        running is not None or await _held_run(session, schedule.template_id) is not None
    )
    try:
        async with session.begin_nested():
            deployment = await launch_from_trigger(
                session=session,
                tenant_id=schedule.tenant_id,
                template_id=schedule.template_id,
                values=service.launch_values(schedule),
                trigger="schedule",
                launched_by=_launched_by(schedule),
                schedule_id=schedule.id,
                settings=settings,
                held=held,
            )
    except ShipyardError as exc:
        # The template changed since the schedule was saved (a parameter now refused, no
        # host matches the target): the fire is recorded as failed, with the reason.
        field_name = getattr(exc, "field", None)
        await _set_fire(
            session,
            fire_id,
            verdict="failed",
            reason=f"{field_name}: {exc.message}" if field_name else exc.message,
        )
        return
    result.launched.append(deployment.id)
    if held:
        behind = running.id if running is not None else "an earlier queued run"
        reason = f"queued: starts when run {behind} ends (overlap policy queue)"
        await _set_fire(
            session,
            fire_id,
            verdict="queued",
            reason=_join(note, reason),
            deployment_id=deployment.id,
        )
    else:
        alongside = (
            f"ran alongside run {running.id} (overlap policy allow)"
            if running is not None
            else None
        )
        await _set_fire(
            session,
            fire_id,
            verdict="ran",
            reason=_join(note, alongside),
            deployment_id=deployment.id,
        )


def _join(*parts: str | None) -> str | None:
    found = [part for part in parts if part]
    return "; ".join(found) if found else None


def _stamp(at: datetime, schedule: Schedule) -> str:
    try:
        return crons.in_zone(at, schedule.timezone).isoformat()
    except ShipyardError:
        return at.isoformat()


async def _process(
    session: AsyncSession,
    schedule: Schedule,
    *,
    now: datetime,
    settings: Settings,
    result: TickResult,
) -> None:
    times, dropped = _due_times(schedule, now)
    on_time = [at for at in times if now - at <= GRACE]
    missed = [at for at in times if now - at > GRACE]
    if missed:
        first = _stamp(missed[0], schedule)
        down = f"Shipyard was not running at this time (noticed {now - missed[-1]} after it)"
        more = (
            "; many earlier missed fires not recorded"
            if dropped is None
            else f"; {dropped} earlier missed fire(s) not recorded"
            if dropped
            else ""
        )
        if schedule.missed_policy == "run_once" and not on_time:
            # One catch-up run for every missed fire, on the newest one's row.
            for at in missed[:-1]:
                await _claim(
                    session,
                    schedule,
                    at,
                    "missed",
                    f"{down}; caught up by one run at {_stamp(missed[-1], schedule)}",
                )
            count = f"{len(missed) + dropped}" if dropped is not None else "many"
            await _fire(
                session,
                schedule,
                missed[-1],
                settings=settings,
                result=result,
                note=f"catch-up run for {count} missed fire(s) since {first} "
                f"(missed policy run_once){more}",
            )
        else:
            why = (
                f"{down}; the run at {_stamp(on_time[0], schedule)} covers it "
                "(missed policy run_once)"
                if on_time
                else f"{down} (missed policy skip)"
            )
            for index, at in enumerate(missed):
                await _claim(session, schedule, at, "missed", why + (more if index == 0 else ""))
    for at in on_time:
        await _fire(session, schedule, at, settings=settings, result=result)
    schedule.last_fire_at = times[-1]
    schedule.next_fire_at = service.next_fire(schedule, after=max(now, times[-1]))


async def fire_due(
    session: AsyncSession, *, now: datetime, settings: Settings, batch: int = BATCH
) -> TickResult:
    """Fire the schedules due at ``now`` (up to ``batch`` of them), in this transaction.

    ``session`` is a system session (schedules of every tenant).
    """
    result = TickResult()
    schedules = (
        await session.scalars(
            select(Schedule)
            .where(
                # The partial index's own predicate, so the scan is one index range.
                Schedule.enabled,
                Schedule.next_fire_at.is_not(None),
                Schedule.next_fire_at <= now,
            )
            .order_by(Schedule.next_fire_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for schedule in schedules:
        result.schedules += 1
        try:
            async with session.begin_nested():
                await _process(session, schedule, now=now, settings=settings, result=result)
        except Exception:
            # One broken schedule (say, a zone removed from the system's tz database) must not
            # stop the others: it is pushed an hour on and logged.
            logger.exception("schedule %s could not fire; retrying in an hour", schedule.id)
            schedule.next_fire_at = now + timedelta(hours=1)
    await session.flush()
    return result


async def release_queued(session: AsyncSession) -> list[UUID]:
    """Start the oldest held run of each template whose previous run has ended.

    A transaction-scoped advisory lock per template keeps two ticks from releasing two runs of
    one template at once; the held run's job is moved from far away to now.
    """
    candidates = (
        await session.execute(
            select(Deployment.template_id, func.min(ScheduleFire.fire_time))
            .join(ScheduleFire, ScheduleFire.deployment_id == Deployment.id)
            # Driven by the few 'scheduled' runs (deployments' status index), not by the
            # fire history, which only grows.
            .where(
                Deployment.status == "scheduled",
                Deployment.schedule_id.is_not(None),
                ScheduleFire.verdict == "queued",
            )
            .group_by(Deployment.template_id)
        )
    ).all()
    released: list[UUID] = []
    for template_id, _ in candidates:
        if template_id is None:
            continue
        locked = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"schedules:release:{template_id}"},
        )
        if not locked:
            continue
        busy = await session.scalar(
            select(
                exists().where(
                    Deployment.template_id == template_id, Deployment.status.in_(RUNNING)
                )
            )
        )
        if busy:
            continue
        held = await session.scalar(
            select(Deployment)
            .join(ScheduleFire, ScheduleFire.deployment_id == Deployment.id)
            .where(
                Deployment.template_id == template_id,
                Deployment.status == "scheduled",
                ScheduleFire.verdict == "queued",
            )
            .order_by(ScheduleFire.fire_time)
            .limit(1)
            .with_for_update(of=Deployment, skip_locked=True)
        )
        if held is None:
            continue
        if await deployments.release_held(session, held):
            released.append(held.id)
    await session.flush()
    return released
