"""Background jobs: the expiry of runs waiting in pending_approval."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.approvals.service import EXPIRY_BATCH, expire_pending
from shipyard.jobs import JobRun, TaskSet

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

tasks = TaskSet("approvals")
# Rounds of one sweep at most (EXPIRY_BATCH runs each); the rest waits for the next sweep.
MAX_ROUNDS = 20


async def expire(runtime: Runtime) -> list[UUID]:
    """End the runs whose wait for approval has expired, in short transactions."""
    ended: list[UUID] = []
    for _ in range(MAX_ROUNDS):
        async with runtime.db.session(system=True) as session:
            batch = await expire_pending(session, now=runtime.clock.now())
        ended.extend(batch)
        if len(batch) < EXPIRY_BATCH:
            break
    return ended


@tasks.task("expire", queueing_lock="approvals-expire", periodic="* * * * * */15")
async def expire_approvals(job: JobRun, timestamp: int) -> None:
    """Every 15 seconds: cancel the runs still waiting for approval past their expiry."""
    await expire(job.runtime)
