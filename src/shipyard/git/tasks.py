"""Background jobs of the git domain: provider syncs, on demand and periodic."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, or_, select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.models import GitOAuthState, GitProvider
from shipyard.git.service import queue_sync
from shipyard.git.sync import fill_languages as run_fill
from shipyard.git.sync import sync_provider as run_sync
from shipyard.jobs import JobRun, TaskSet

logger = logging.getLogger(__name__)

tasks = TaskSet("git")


@tasks.task("sync_provider", retry_when_stalled=True)
async def sync_provider(job: JobRun, tenant_id: str, provider_id: str) -> None:
    await run_sync(
        db=job.runtime.db,
        settings=job.runtime.settings,
        tenant_id=UUID(tenant_id),
        provider_id=UUID(provider_id),
        http=job.runtime.http,
    )


@tasks.task("fill_languages", retry_when_stalled=True)
async def fill_languages(
    job: JobRun, tenant_id: str, provider_id: str, external_ids: list[str]
) -> None:
    """GitLab lists projects without their language: looked up after the sync, in the background."""
    await run_fill(
        db=job.runtime.db,
        settings=job.runtime.settings,
        tenant_id=UUID(tenant_id),
        provider_id=UUID(provider_id),
        external_ids=external_ids,
        http=job.runtime.http,
    )


@tasks.task("sync_stale_providers", queueing_lock="git-sync-stale", periodic="* * * * *")
async def sync_stale_providers(job: JobRun, timestamp: int) -> None:
    await queue_stale_syncs(db=job.runtime.db, settings=job.runtime.settings)


async def queue_stale_syncs(*, db: Database, settings: Settings) -> int:
    """Queue a sync for each connected provider not synced within the configured interval."""
    if settings.git_sync_interval_minutes == 0:
        return 0
    cutoff = datetime.now(UTC) - timedelta(minutes=settings.git_sync_interval_minutes)
    queued = 0
    # Spans tenants: only this scheduling read and the enqueue run as the system. A provider
    # whose sync is already waiting is skipped by the queueing lock.
    async with db.session(system=True) as session:
        providers = (
            await session.scalars(
                select(GitProvider).where(
                    GitProvider.is_configured.is_(True),
                    GitProvider.access_token.is_not(None),
                    or_(GitProvider.last_synced.is_(None), GitProvider.last_synced < cutoff),
                )
            )
        ).all()
        for provider in providers:
            if await queue_sync(session=session, provider=provider):
                queued += 1
        await session.execute(
            delete(GitOAuthState).where(GitOAuthState.expires_at < datetime.now(UTC))
        )
    if queued:
        logger.info("queued %d periodic git syncs", queued)
    return queued
