"""Background jobs of the audit trail: streaming new entries, deleting expired ones."""

from __future__ import annotations

import logging

from shipyard.audit import service
from shipyard.audit.streaming import send_all
from shipyard.jobs import JobRun, TaskSet

logger = logging.getLogger(__name__)
tasks = TaskSet("audit")


@tasks.task("stream", queueing_lock="audit-stream", periodic="*/5 * * * * *")
async def stream_entries(job: JobRun, timestamp: int) -> None:
    """Every five seconds: send each enabled stream the entries after its cursor."""
    await send_all(job.runtime)


@tasks.task("expire", queueing_lock="audit-expire", periodic="23 3 * * *")
async def expire_entries(job: JobRun, timestamp: int) -> None:
    """Daily: delete entries older than their tenant's retention period."""
    runtime = job.runtime
    async with runtime.db.session(system=True) as session:
        deleted = await service.delete_expired(
            session=session,
            now=runtime.clock.now(),
            default_days=runtime.settings.audit_retention_days,
        )
    logger.info("audit retention: %d entries deleted", deleted)
