"""Filling a provider's job catalogue from what the provider lists."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.cicd.connection import open_client
from shipyard.cicd.models import CicdJob, CicdProvider
from shipyard.cicd.providers.base import RemoteJob
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import ShipyardError
from shipyard.jobs import enqueue
from shipyard.outbound.client import build_http_client

logger = logging.getLogger(__name__)

SYNC_TASK = "cicd:sync_provider"


@dataclass(frozen=True)
class SyncResult:
    ok: bool
    jobs: int = 0
    removed: int = 0
    error: str | None = None


def retry_delay(settings: Settings, failures: int) -> timedelta:
    """How long a provider that failed ``failures`` syncs in a row waits before the next one.

    Doubles from ``cicd_sync_retry_minutes`` per failure, up to the normal sync interval.
    """
    first = settings.cicd_sync_retry_minutes
    ceiling = max(float(settings.cicd_sync_interval_minutes), first)
    return timedelta(minutes=min(first * 2 ** min(failures - 1, 20), ceiling))


async def _record_error(
    db: Database, settings: Settings, tenant_id: UUID, provider_id: UUID, message: str
) -> None:
    async with db.session(tenant_id=tenant_id) as session:
        provider = await session.get(CicdProvider, provider_id)
        if provider is not None:
            provider.error = message
            provider.sync_failures += 1
            provider.next_sync_at = datetime.now(UTC) + retry_delay(
                settings, provider.sync_failures
            )


async def _fetch(
    db: Database, settings: Settings, tenant_id: UUID, provider_id: UUID, http: httpx.AsyncClient
) -> list[RemoteJob] | None:
    async with db.session(tenant_id=tenant_id) as session:
        provider = await session.scalar(
            select(CicdProvider).where(
                CicdProvider.id == provider_id, CicdProvider.tenant_id == tenant_id
            )
        )
        if provider is None:
            return None
        client = await open_client(session, provider, http=http, settings=settings)
    return await client.list_jobs()


async def sync_provider(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    provider_id: UUID,
    http: httpx.AsyncClient | None = None,
) -> SyncResult:
    """Upsert the provider's jobs on (provider_id, external_id) and drop those gone upstream."""
    try:
        if http is None:
            async with build_http_client(settings) as own:
                remote = await _fetch(db, settings, tenant_id, provider_id, own)
        else:
            remote = await _fetch(db, settings, tenant_id, provider_id, http)
    except ShipyardError as exc:
        logger.warning("CI/CD provider %s: sync failed: %s", provider_id, exc.message)
        await _record_error(db, settings, tenant_id, provider_id, exc.message)
        return SyncResult(ok=False, error=exc.message)
    if remote is None:
        return SyncResult(ok=False, error="the provider no longer exists")
    unique = {job.external_id: job for job in remote}
    async with db.session(tenant_id=tenant_id) as session:
        # Lock the provider so a concurrent delete cannot orphan the rows written here.
        provider = await session.scalar(
            select(CicdProvider).where(CicdProvider.id == provider_id).with_for_update()
        )
        if provider is None:
            return SyncResult(ok=False, error="the provider no longer exists")
        if unique:
            statement = insert(CicdJob).values(
                [
                    {
                        "tenant_id": tenant_id,
                        "provider_id": provider_id,
                        "external_id": job.external_id,
                        "name": job.name,
                        "path": job.path,
                        "description": job.description,
                        "parameters": job.parameters,
                        "buildable": job.buildable,
                    }
                    for job in unique.values()
                ]
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[CicdJob.provider_id, CicdJob.external_id],
                    set_={
                        "name": statement.excluded.name,
                        "path": statement.excluded.path,
                        "description": statement.excluded.description,
                        "parameters": statement.excluded.parameters,
                        "buildable": statement.excluded.buildable,
                    },
                )
            )
        removed = await session.execute(
            delete(CicdJob).where(
                CicdJob.provider_id == provider_id, CicdJob.external_id.not_in(list(unique))
            )
        )
        provider.last_synced_at = datetime.now(UTC)
        provider.error = None
        provider.sync_failures = 0
        provider.next_sync_at = None
    count = int(getattr(removed, "rowcount", 0) or 0)
    logger.info("CI/CD provider %s: %d jobs synced, %d removed", provider_id, len(unique), count)
    return SyncResult(ok=True, jobs=len(unique), removed=count)


async def enqueue_due_syncs(*, db: Database, settings: Settings) -> int:
    """Queue a sync for every provider not synced within the configured interval.

    A provider whose last syncs failed waits until its ``next_sync_at`` (backing off) instead.
    """
    if settings.cicd_sync_interval_minutes <= 0:
        return 0
    now = datetime.now(UTC)
    due_before = now - timedelta(minutes=settings.cicd_sync_interval_minutes)
    async with db.session(system=True) as session:
        rows = await session.execute(
            select(CicdProvider.id, CicdProvider.tenant_id).where(
                or_(
                    and_(
                        CicdProvider.next_sync_at.is_(None),
                        or_(
                            CicdProvider.last_synced_at.is_(None),
                            CicdProvider.last_synced_at < due_before,
                        ),
                    ),
                    CicdProvider.next_sync_at <= now,
                )
            )
        )
        queued = 0
        for provider_id, tenant_id in rows:
            if await enqueue_sync(session, provider_id=provider_id, tenant_id=tenant_id):
                queued += 1
    return queued


async def enqueue_sync(session: AsyncSession, *, provider_id: UUID, tenant_id: UUID) -> int | None:
    """Queue a sync of the provider; None when one is already waiting.

    The queueing lock keeps one waiting; the lock keeps one running, so a slow sync (retrying a
    provider that is down) never overlaps the next one.
    """
    try:
        async with session.begin_nested():
            return await enqueue(
                session,
                task=SYNC_TASK,
                args={"provider_id": str(provider_id), "tenant_id": str(tenant_id)},
                queueing_lock=f"cicd-sync-{provider_id}",
                lock=f"cicd-sync-{provider_id}",
            )
    except IntegrityError:
        return None
