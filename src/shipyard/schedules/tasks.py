"""The scheduler's periodic job: every second, on whichever worker takes it.

procrastinate defers the periodic job once per second for all workers together (and the
queueing lock keeps at most one waiting); the tick may still run on several workers or
``serve`` processes at once (a slow tick, a test calling it directly): the database keeps each
fire to at most once (see :mod:`shipyard.schedules.scheduler`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from shipyard.jobs import JobRun, TaskSet, enqueue
from shipyard.schedules.scheduler import TickResult, fire_due, release_queued

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

tasks = TaskSet("schedules")
# Schedules per transaction, and transactions a tick runs at once (SKIP LOCKED lets them take
# different schedules). A batch costs a few statements whatever its size (see
# scheduler.fire_due): 200 fires are ~0.2 s of one transaction on a loaded 2-core machine, so a
# burst of 1,000 is five short transactions, spread over this worker's drainers and the
# helpers on other workers.
TICK_BATCH = 200
DRAINERS = 2
# Transactions per drainer per tick at most (the rest: next second).
MAX_ROUNDS = 50
# Helper jobs a busy tick defers so that other workers drain too.
HELPERS = 2
DRAIN_TASK = "schedules:drain"


async def _drain(runtime: Runtime, total: TickResult) -> None:
    for _ in range(MAX_ROUNDS):
        async with runtime.db.session(system=True) as session:
            result = await fire_due(
                session, now=runtime.clock.now(), settings=runtime.settings, batch=TICK_BATCH
            )
        total.fired += result.fired
        total.schedules += result.schedules
        total.launched.extend(result.launched)
        if result.schedules < TICK_BATCH:
            return


async def _call_helpers(runtime: Runtime) -> None:
    """Ask other workers to drain too (one waiting helper job per slot at most)."""
    for slot in range(HELPERS):
        try:
            async with runtime.db.session(system=True) as session:
                await enqueue(
                    session, task=DRAIN_TASK, args={}, queueing_lock=f"schedules-drain-{slot}"
                )
        except IntegrityError:
            continue  # that slot's helper is already waiting


async def tick(runtime: Runtime, *, helpers: bool = True) -> TickResult:
    """Fire what is due now (short transactions, several at once; other workers called in when
    much is due), then release queued runs."""
    total = TickResult()
    await _drain(runtime, total)
    if total.schedules >= TICK_BATCH:
        # More is due than one transaction takes: drain the rest in parallel, here and on
        # other workers (their transactions take other schedules: SKIP LOCKED).
        if helpers:
            await _call_helpers(runtime)
        await asyncio.gather(*(_drain(runtime, total) for _ in range(DRAINERS)))
    async with runtime.db.session(system=True) as session:
        total.released = await release_queued(session)
    return total


@tasks.task("tick", queueing_lock="schedules-tick", periodic="* * * * * *")
async def scheduler_tick(job: JobRun, timestamp: int) -> None:
    """Every second: fire the schedules that are due."""
    await tick(job.runtime)


@tasks.task("drain")
async def drain_due(job: JobRun) -> None:
    """A busy tick's helper: fire due schedules alongside it (calls no further helpers)."""
    total = TickResult()
    await asyncio.gather(*(_drain(job.runtime, total) for _ in range(DRAINERS)))
