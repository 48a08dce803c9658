"""Background jobs of this domain, registered on the job app by ``shipyard.jobs``."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.hosts.executor import Executor
from shipyard.hosts.models import Host
from shipyard.jobs import JobRun, TaskSet, enqueue, waiting_job_with_queueing_lock

logger = logging.getLogger(__name__)

tasks = TaskSet("hosts")

TEST_ALL_TASK = "hosts:test_all_hosts"


async def enqueue_test_all(session: AsyncSession, *, tenant_id: UUID) -> tuple[int, int]:
    """Queue a test of every host of the tenant; returns (job id, number of hosts)."""
    host_ids = (await session.scalars(select(Host.id).where(Host.tenant_id == tenant_id))).all()
    # One waiting run per tenant is enough: a second request joins the queued one.
    lock = f"hosts-test-all-{tenant_id}"
    queued = await waiting_job_with_queueing_lock(session, lock=lock)
    if queued is not None:
        return queued, len(host_ids)
    job_id = await enqueue(
        session, task=TEST_ALL_TASK, args={"tenant_id": str(tenant_id)}, queueing_lock=lock
    )
    return job_id, len(host_ids)


async def check_all_hosts(
    *, db: Database, settings: Settings, tenant_id: UUID, executor: Executor | None = None
) -> dict[str, int]:
    """Test every host of ``tenant_id``, at most ``host_test_concurrency`` at once.

    Each result is stored as soon as it is known, so a slow host delays only itself.
    Returns how many hosts ended in each status.
    """
    from shipyard.hosts.service import apply_probe, build_target

    executor = executor or Executor.from_settings(settings)
    async with db.session(tenant_id=tenant_id) as session:
        hosts = list((await session.scalars(select(Host).where(Host.tenant_id == tenant_id))).all())
        targets = [(host.id, build_target(host, settings=settings)) for host in hosts]
    limit = asyncio.Semaphore(settings.host_test_concurrency)
    counts: dict[str, int] = {}

    async def one(host_id: UUID, target_index: int) -> None:
        async with limit:
            probe = await executor.probe(targets[target_index][1])
        counts[probe.status] = counts.get(probe.status, 0) + 1
        async with db.session(tenant_id=tenant_id) as session:
            host = await session.get(Host, host_id)
            if host is not None:  # deleted while it was being tested
                apply_probe(host, probe)

    await asyncio.gather(*(one(host_id, index) for index, (host_id, _) in enumerate(targets)))
    logger.info("tested %d hosts of tenant %s: %s", len(targets), tenant_id, counts)
    return counts


@tasks.task("test_all_hosts")
async def run_host_tests(job: JobRun, tenant_id: str) -> None:
    await check_all_hosts(
        db=job.runtime.db,
        settings=job.runtime.settings,
        tenant_id=UUID(tenant_id),
        executor=job.runtime.executor,
    )
