"""Background jobs of the accounts domain: clean-up of expired sessions and throttle rows."""

from __future__ import annotations

import logging

from shipyard.accounts import service, throttle
from shipyard.jobs import JobRun, TaskSet

logger = logging.getLogger(__name__)

tasks = TaskSet("accounts")


@tasks.task("purge_expired", queueing_lock="accounts-purge-expired", periodic="23 * * * *")
async def purge_expired(job: JobRun, timestamp: int) -> None:
    """Hourly: delete expired log-in sessions (each log-in adds one) and old throttle rows."""
    runtime = job.runtime
    now = runtime.clock.now()
    async with runtime.db.session(system=True) as session:
        sessions = await service.purge_expired_sessions(session=session, now=now)
        rows = await throttle.purge_throttle_rows(
            session=session, settings=runtime.settings, now=now
        )
    if sessions or rows:
        logger.info("purged %d expired sessions and %d throttle rows", sessions, rows)
