"""The scheduler's work in one transaction: fire what is due, release queued runs.

Every worker and every ``serve`` runs the tick (:mod:`shipyard.schedules.tasks`); any number of
them may run it at once. What keeps a fire to at most once is the database, not timing:

- due schedules are taken with ``FOR UPDATE SKIP LOCKED`` (two ticks never work on the same
  schedule at the same time; the other one takes the next schedule instead of waiting);
- each fire time is a row of ``schedule_fires`` inserted with ``ON CONFLICT (schedule_id,
  fire_time) DO NOTHING``: only the transaction whose insert succeeded launches the run, in
  that same transaction. A tick that finds the row already there (a schedule re-armed by an
  edit or a resume racing a tick) launches nothing.

The runs are created by :class:`shipyard.templates.triggered.TriggerBatch` (checked exactly as
:func:`~shipyard.templates.triggered.launch_from_trigger` checks one): no network (the commit is
resolved by the worker at checkout). A batch of due schedules costs a few statements whatever
its size: one insert of all its fire rows, per template one insert of its runs, one defer of
their jobs and one insert of their audit entries, one update of the verdicts.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import exists, func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard import cron as crons
from shipyard.config import Settings
from shipyard.deployments import service as deployments
from shipyard.deployments.models import Deployment
from shipyard.errors import ShipyardError
from shipyard.freeze.service import Frozen
from shipyard.notifications.events import Event, emit
from shipyard.schedules import service
from shipyard.schedules.models import Schedule, ScheduleFire
from shipyard.templates.triggered import TriggerBatch

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


@functools.lru_cache(maxsize=4096)
def _next_times(
    cron: str,
    tz: str,
    after: datetime,
    count: int,
    starts_at: datetime | None,
    ends_at: datetime | None,
) -> tuple[datetime, ...]:
    """:func:`crons.next_times`, remembered: a burst is many schedules with few distinct cron
    lines due at one instant (``0 * * * *`` on many templates), so most walks are the same."""
    return tuple(crons.next_times(cron, tz, after, count, starts_at, ends_at))


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
            found = _next_times(
                schedule.cron,
                schedule.timezone,
                now - timedelta(days=1),
                MAX_MISSED_RECORDED + 1,
                schedule.starts_at,
                schedule.ends_at,
            )
        else:
            found = _next_times(
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


def _join(*parts: str | None) -> str | None:
    found = [part for part in parts if part]
    return "; ".join(found) if found else None


def _stamp(at: datetime, schedule: Schedule) -> str:
    try:
        return crons.in_zone(at, schedule.timezone).isoformat()
    except ShipyardError:
        return at.isoformat()


@dataclass
class _Fire:
    """One fire time of one schedule in this tick: ``ran`` (to launch, ``reason`` its note) or
    ``missed`` (recorded only). ``fire_id`` is set when this transaction's insert claimed it."""

    schedule: Schedule
    fire_time: datetime
    verdict: str
    reason: str | None
    fire_id: UUID | None = None


def _plan(schedule: Schedule, now: datetime) -> list[_Fire]:
    """The fire rows of ``schedule`` due at ``now`` (missed ones per the downtime policy), in
    order; moves the schedule on to its next fire time."""
    times, dropped = _due_times(schedule, now)
    on_time = [at for at in times if now - at <= GRACE]
    missed = [at for at in times if now - at > GRACE]
    planned: list[_Fire] = []
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
            caught = f"{down}; caught up by one run at {_stamp(missed[-1], schedule)}"
            planned.extend(_Fire(schedule, at, "missed", caught) for at in missed[:-1])
            count = f"{len(missed) + dropped}" if dropped is not None else "many"
            note = (
                f"catch-up run for {count} missed fire(s) since {first} "
                f"(missed policy run_once){more}"
            )
            planned.append(_Fire(schedule, missed[-1], "ran", note))
        else:
            why = (
                f"{down}; the run at {_stamp(on_time[0], schedule)} covers it "
                "(missed policy run_once)"
                if on_time
                else f"{down} (missed policy skip)"
            )
            planned.extend(
                _Fire(schedule, at, "missed", why + (more if index == 0 else ""))
                for index, at in enumerate(missed)
            )
    planned.extend(_Fire(schedule, at, "ran", None) for at in on_time)
    schedule.last_fire_at = times[-1]
    following = _next_times(
        schedule.cron,
        schedule.timezone,
        max(now, times[-1]),
        1,
        schedule.starts_at,
        schedule.ends_at,
    )
    schedule.next_fire_at = following[0] if following else None
    return planned


_CLAIM = text(
    "INSERT INTO schedule_fires (tenant_id, schedule_id, fire_time, verdict, reason) "
    "SELECT * FROM unnest(CAST(:tenants AS uuid[]), CAST(:schedules AS uuid[]), "
    "CAST(:times AS timestamptz[]), CAST(:verdicts AS text[]), CAST(:reasons AS text[])) "
    "ON CONFLICT (schedule_id, fire_time) DO NOTHING "
    "RETURNING id, schedule_id, fire_time"
)


async def _claim_all(session: AsyncSession, planned: list[_Fire]) -> None:
    """Insert every fire row in one statement ``ON CONFLICT DO NOTHING``: a row another
    transaction inserted first is not returned, and its fire is not this transaction's."""
    if not planned:
        return
    inserted = await session.execute(
        _CLAIM,
        {
            "tenants": [fire.schedule.tenant_id for fire in planned],
            "schedules": [fire.schedule.id for fire in planned],
            "times": [fire.fire_time for fire in planned],
            "verdicts": [fire.verdict for fire in planned],
            "reasons": [fire.reason for fire in planned],
        },
    )
    claimed = {(schedule_id, at): fire_id for fire_id, schedule_id, at in inserted}
    for fire in planned:
        fire.fire_id = claimed.get((fire.schedule.id, fire.fire_time))


_SET_FIRES = text(
    "UPDATE schedule_fires AS f SET verdict = v.verdict, reason = v.reason, "
    "deployment_id = CAST(v.deployment_id AS uuid) "
    "FROM unnest(CAST(:ids AS text[]), CAST(:verdicts AS text[]), CAST(:reasons AS text[]), "
    "CAST(:deployments AS text[])) AS v(id, verdict, reason, deployment_id) "
    "WHERE f.id = CAST(v.id AS uuid)"
)


@dataclass
class _Verdicts:
    """The fire rows' final verdicts, written in one statement."""

    ids: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    deployments: list[str | None] = field(default_factory=list)

    def extend(self, other: _Verdicts) -> None:
        self.ids.extend(other.ids)
        self.verdicts.extend(other.verdicts)
        self.reasons.extend(other.reasons)
        self.deployments.extend(other.deployments)

    def set(
        self, fire_id: UUID, verdict: str, reason: str | None, deployment_id: UUID | None = None
    ) -> None:
        self.ids.append(str(fire_id))
        self.verdicts.append(verdict)
        self.reasons.append(reason)
        self.deployments.append(str(deployment_id) if deployment_id else None)

    async def write(self, session: AsyncSession) -> None:
        if self.ids:
            await session.execute(
                _SET_FIRES,
                {
                    "ids": self.ids,
                    "verdicts": self.verdicts,
                    "reasons": self.reasons,
                    "deployments": self.deployments,
                },
            )


def _failed(exc: ShipyardError) -> str:
    field_name = getattr(exc, "field", None)
    return f"{field_name}: {exc.message}" if field_name else exc.message


async def _overlap_state(
    session: AsyncSession, template_ids: set[UUID]
) -> tuple[dict[UUID, tuple[UUID, str]], set[UUID]]:
    """Per template: its oldest run still going (id, status), and whether a held run waits."""
    running = {
        template_id: (deployment_id, status)
        for template_id, deployment_id, status in await session.execute(
            select(Deployment.template_id, Deployment.id, Deployment.status)
            .where(Deployment.template_id.in_(template_ids), Deployment.status.in_(RUNNING))
            .order_by(Deployment.template_id, Deployment.created_at)
            .ext(distinct_on(Deployment.template_id))
        )
        if template_id is not None
    }
    held = set(
        await session.scalars(
            select(Deployment.template_id)
            .join(ScheduleFire, ScheduleFire.deployment_id == Deployment.id)
            .where(
                Deployment.template_id.in_(template_ids),
                Deployment.status == "scheduled",
                ScheduleFire.verdict == "queued",
            )
            .distinct()
        )
    )
    return running, {template_id for template_id in held if template_id is not None}


async def _launch_template(
    session: AsyncSession,
    template_id: UUID,
    fires: list[_Fire],
    *,
    running: tuple[UUID, str] | None,
    held_waiting: bool,
    settings: Settings,
    verdicts: _Verdicts,
    result: TickResult,
    now: datetime | None = None,
) -> None:
    """Apply the overlap policy to each claimed fire of one template, in order, and launch the
    runs together (one batch: the template read and checked once)."""
    batch = TriggerBatch(
        session=session,
        tenant_id=fires[0].schedule.tenant_id,
        template_id=template_id,
        trigger="schedule",
        settings=settings,
        now=now,
    )
    # What each launch said, resolved once the runs have ids: (fire, index, held, running
    # then: a stored run, or the index of a run of this batch).
    launched: list[tuple[_Fire, int, bool, tuple[UUID, str] | int | None]] = []
    current: tuple[UUID, str] | int | None = running
    for fire in fires:
        schedule = fire.schedule
        assert fire.fire_id is not None
        policy = schedule.overlap_policy
        if current is not None and policy == "skip":
            launched.append((fire, -1, False, current))
            continue
        held = policy == "queue" and (current is not None or held_waiting)
        try:
            index = await batch.add(
                values=service.launch_values(schedule),
                launched_by=_launched_by(schedule),
                schedule_id=schedule.id,
                held=held,
            )
        except Frozen as exc:
            # A freeze window is in force: the fire is recorded skipped, naming the window.
            verdicts.set(fire.fire_id, "skipped", exc.reason)
            continue
        except ShipyardError as exc:
            # The template changed since the schedule was saved (a parameter now refused, no
            # host matches the target): the fire is recorded as failed, with the reason.
            verdicts.set(fire.fire_id, "failed", _failed(exc))
            continue
        launched.append((fire, index, held, current))
        if held:
            held_waiting = True
        elif current is None:
            current = index
    ids = await batch.store()
    for fire, index, held, ahead in launched:
        assert fire.fire_id is not None
        before: tuple[UUID, str] | None = (
            (ids[ahead], "pending") if isinstance(ahead, int) else ahead
        )
        if index < 0:
            assert before is not None
            verdicts.set(
                fire.fire_id,
                "skipped",
                f"the previous run {before[0]} is still {before[1]} (overlap policy skip)",
            )
            continue
        deployment_id = ids[index]
        result.launched.append(deployment_id)
        if held:
            behind = before[0] if before is not None else "an earlier queued run"
            reason = f"queued: starts when run {behind} ends (overlap policy queue)"
            verdicts.set(fire.fire_id, "queued", _join(fire.reason, reason), deployment_id)
        else:
            alongside = (
                f"ran alongside run {before[0]} (overlap policy allow)"
                if before is not None
                else None
            )
            verdicts.set(fire.fire_id, "ran", _join(fire.reason, alongside), deployment_id)


async def fire_due(
    session: AsyncSession, *, now: datetime, settings: Settings, batch: int = BATCH
) -> TickResult:
    """Fire the schedules due at ``now`` (up to ``batch`` of them), in this transaction.

    ``session`` is a system session (schedules of every tenant). The whole batch costs a few
    statements: the due schedules, one insert of every fire row (only the rows it returns are
    this transaction's to launch), the overlap state of their templates, per template one
    insert of its runs, one defer of their jobs and one insert of their audit entries, and one
    update of the fire rows' verdicts.
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
    planned: list[_Fire] = []
    for schedule in schedules:
        result.schedules += 1
        try:
            planned.extend(_plan(schedule, now))
        except Exception:
            # One broken schedule (say, a zone removed from the system's tz database) must not
            # stop the others: it is pushed an hour on and logged.
            logger.exception("schedule %s could not fire; retrying in an hour", schedule.id)
            schedule.next_fire_at = now + timedelta(hours=1)
    await _claim_all(session, planned)
    by_template: dict[UUID, list[_Fire]] = {}
    for fire in planned:
        if fire.fire_id is not None and fire.verdict == "ran":
            result.fired += 1
            by_template.setdefault(fire.schedule.template_id, []).append(fire)
    verdicts = _Verdicts()
    if by_template:
        running, held = await _overlap_state(session, set(by_template))
        for template_id, fires in by_template.items():
            decided, launched = _Verdicts(), TickResult()
            try:
                async with session.begin_nested():
                    await _launch_template(
                        session,
                        template_id,
                        fires,
                        running=running.get(template_id),
                        held_waiting=template_id in held,
                        settings=settings,
                        verdicts=decided,
                        result=launched,
                        now=now,
                    )
                verdicts.extend(decided)
                result.launched.extend(launched.launched)
            except Exception:
                logger.exception("the runs of template %s could not be stored", template_id)
                for fire in fires:
                    assert fire.fire_id is not None
                    verdicts.set(
                        fire.fire_id, "failed", "the run could not be stored (see the log)"
                    )
    await verdicts.write(session)
    await _notify_not_run(session, planned, verdicts)
    await session.flush()
    return result


async def _notify_not_run(session: AsyncSession, planned: list[_Fire], verdicts: _Verdicts) -> None:
    """``schedule.missed`` once per schedule whose fires this tick were missed or skipped."""
    decided = dict(
        zip(verdicts.ids, zip(verdicts.verdicts, verdicts.reasons, strict=True), strict=True)
    )
    found: dict[UUID, tuple[Schedule, list[str]]] = {}
    for fire in planned:
        if fire.fire_id is None:
            continue
        verdict, reason = decided.get(str(fire.fire_id), (fire.verdict, fire.reason))
        if verdict in ("missed", "skipped"):
            found.setdefault(fire.schedule.id, (fire.schedule, []))[1].append(
                f"{verdict} at {_stamp(fire.fire_time, fire.schedule)}: {reason or verdict}"
            )
    for schedule, lines in found.values():
        await emit(
            session,
            Event(
                name="schedule.missed",
                tenant_id=schedule.tenant_id,
                subject_type="schedule",
                subject_id=schedule.id,
                title=f"Schedule {schedule.name or schedule.cron}",
                status="missed" if lines[0].startswith("missed") else "skipped",
                triggered_by="schedule",
                template_id=schedule.template_id,
                path=f"/schedules/{schedule.id}",
                detail="\n".join(lines[:20]),
            ),
        )


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
