"""The scheduler's periodic job: every second, on whichever worker takes it.

procrastinate defers the periodic job once per second for all workers together (and the
queueing lock keeps at most one waiting); the tick may still run on several workers or
``serve`` processes at once (a slow tick, a test calling it directly): the database keeps each
fire to at most once (see :mod:`shipyard.schedules.scheduler`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.jobs import JobRun, TaskSet
from shipyard.schedules.scheduler import BATCH, TickResult, fire_due, release_queued

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

tasks = TaskSet("schedules")
# Transactions of up to BATCH schedules per tick, at most this many (the rest: next second).
MAX_ROUNDS = 20


async def tick(runtime: Runtime) -> TickResult:
    """Fire what is due now (short transactions of BATCH schedules), then release queued runs."""
    total = TickResult()
    for _ in range(MAX_ROUNDS):
        async with runtime.db.session(system=True) as session:
            result = await fire_due(
                session, now=runtime.clock.now(), settings=runtime.settings, batch=BATCH
            )
        total.fired += result.fired
        total.schedules += result.schedules
        total.launched.extend(result.launched)
        if result.schedules < BATCH:
            break
    async with runtime.db.session(system=True) as session:
        total.released = await release_queued(session)
    return total


@tasks.task("tick", queueing_lock="schedules-tick", periodic="* * * * * *")
async def scheduler_tick(job: JobRun, timestamp: int) -> None:
    """Every second: fire the schedules that are due."""
    await tick(job.runtime)
