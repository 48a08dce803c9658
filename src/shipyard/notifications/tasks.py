"""Background jobs: sending notification deliveries (one attempt per job; retries are new jobs
deferred after the backoff, so a waiting retry holds no worker)."""

from __future__ import annotations

from uuid import UUID

from shipyard.jobs import JobRun, TaskSet
from shipyard.notifications.flows import deliver

tasks = TaskSet("notifications")


@tasks.task("deliver", retry_when_stalled=True)
async def deliver_notification(job: JobRun, tenant_id: str, delivery_id: str) -> None:
    """Send one delivery's message (one attempt; see flows.deliver)."""
    await deliver(job.runtime, tenant_id=UUID(tenant_id), delivery_id=UUID(delivery_id))
