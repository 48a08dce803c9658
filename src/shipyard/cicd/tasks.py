"""Background jobs: sync a provider's job catalogue; periodically sync every provider due."""

from __future__ import annotations

from uuid import UUID

from shipyard.cicd.sync import enqueue_due_syncs
from shipyard.cicd.sync import sync_provider as sync
from shipyard.jobs import JobRun, TaskSet

tasks = TaskSet("cicd")


@tasks.task("sync_provider", retry_when_stalled=True)
async def sync_provider(job: JobRun, provider_id: str, tenant_id: str) -> None:
    await sync(
        db=job.runtime.db,
        settings=job.runtime.settings,
        tenant_id=UUID(tenant_id),
        provider_id=UUID(provider_id),
        http=job.runtime.http,
    )


@tasks.task("sync_due_providers", queueing_lock="cicd_sync_due", periodic="* * * * *")
async def sync_due_providers(job: JobRun, timestamp: int) -> None:
    await enqueue_due_syncs(db=job.runtime.db, settings=job.runtime.settings)
