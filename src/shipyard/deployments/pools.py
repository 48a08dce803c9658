"""Worker pools in a run: which hosts run where, the parts sent to pools, and following them.

A host's pool is its own, else its groups' (hosts.inventory.effective_pools); a host with none
runs on any worker. The deployment's own job (the coordinator, on the default queue) runs the
hosts without a pool and those of the pools its worker serves; every other pool gets one part
job on the queue ``pool:<name>``, which only that pool's workers take. The coordinator follows
the parts through their job rows: a part that no worker of its pool takes within
``pool_worker_wait_seconds`` while none runs, or whose worker is lost, ends its hosts failed
with a message on the run's log. Parts write the same script rows and log lines as the
coordinator; the run's outcome is read back from the script rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select, update

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.host_run import HostOutcome
from shipyard.deployments.models import DeploymentScript
from shipyard.hosts.inventory import effective_pools
from shipyard.jobs import cancel_job, enqueue, job_states, pool_queue, pool_workers_alive

logger = logging.getLogger(__name__)

PART_TASK = "deployments:run_part"
# procrastinate's workers refresh their heartbeat every 10 s and are pruned after 30 s stale.
PART_WORKER_LOST_AFTER_SECONDS = 30.0
# After a cancel, how long parts get to stop their scripts, beyond a heartbeat and a kill.
PART_STOP_MARGIN_SECONDS = 10.0

Log = Callable[[str, str], Awaitable[object]]


@dataclass
class Part:
    """One pool's share of a run, as a job on the pool's queue."""

    pool: str
    host_ids: list[UUID]
    job_id: int
    enqueued_at: float
    done: bool = False


async def host_pools(
    db: Database, *, tenant_id: UUID, host_ids: Sequence[UUID]
) -> dict[UUID, str | None]:
    """Each host's pool (None: any worker): its own, else its groups' (hosts.inventory)."""
    if not host_ids:
        return {}
    async with db.session(tenant_id=tenant_id) as session:
        return await effective_pools(session=session, tenant_id=tenant_id, host_ids=host_ids)


def split_by_pool(
    host_ids: Iterable[UUID], pools: dict[UUID, str | None], served: frozenset[str]
) -> tuple[list[UUID], dict[str, list[UUID]]]:
    """(hosts this worker runs, {pool: hosts} for other workers), in the run's host order."""
    here: list[UUID] = []
    elsewhere: dict[str, list[UUID]] = defaultdict(list)
    for host_id in host_ids:
        pool = pools.get(host_id)
        if pool is None or pool in served:
            here.append(host_id)
        else:
            elsewhere[pool].append(host_id)
    return here, dict(elsewhere)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


async def enqueue_parts(
    db: Database,
    *,
    tenant_id: UUID,
    deployment_id: UUID,
    coordinator_id: str,
    elsewhere: dict[str, list[UUID]],
) -> list[Part]:
    """One part job per pool, all in one transaction."""
    parts: list[Part] = []
    async with db.session(tenant_id=tenant_id) as session:
        for pool, host_ids in sorted(elsewhere.items()):
            job_id = await enqueue(
                session,
                task=PART_TASK,
                queue=pool_queue(pool),
                args={
                    "deployment_id": str(deployment_id),
                    "tenant_id": str(tenant_id),
                    "pool": pool,
                    "host_ids": [str(host_id) for host_id in host_ids],
                    "coordinator_id": coordinator_id,
                },
            )
            parts.append(Part(pool, host_ids, job_id, time.monotonic()))
    return parts


async def end_unfinished(
    db: Database,
    *,
    tenant_id: UUID,
    deployment_id: UUID,
    host_ids: Sequence[UUID],
    status: str,
    error: str,
) -> None:
    """Give the hosts' scripts that have not finished a final ``status``."""
    async with db.session(tenant_id=tenant_id) as session:
        await session.execute(
            update(DeploymentScript)
            .where(
                DeploymentScript.deployment_id == deployment_id,
                DeploymentScript.host_id.in_(host_ids),
                DeploymentScript.status.in_(("pending", "running")),
            )
            .values(status=status, error=error, completed_at=datetime.now(UTC))
        )


async def outcomes_from_rows(
    db: Database, *, tenant_id: UUID, deployment_id: UUID, host_ids: Sequence[UUID]
) -> dict[UUID, HostOutcome]:
    """What each host's scripts came to, read from their rows (the parts ran elsewhere)."""
    statuses: dict[UUID, list[str]] = {host_id: [] for host_id in host_ids}
    async with db.session(tenant_id=tenant_id) as session:
        rows = await session.execute(
            select(DeploymentScript.host_id, DeploymentScript.status).where(
                DeploymentScript.deployment_id == deployment_id,
                DeploymentScript.host_id.in_(host_ids),
            )
        )
        for host_id, status in rows:
            if host_id is not None:
                statuses.setdefault(host_id, []).append(status)
    return {
        host_id: HostOutcome(
            host_id,
            succeeded=bool(found) and all(status == "success" for status in found),
            cancelled="cancelled" in found,
            interrupted="interrupted" in found,
        )
        for host_id, found in statuses.items()
    }


class PartFollower:
    """Waits for a run's parts; ends the hosts of a part that cannot run or whose worker died."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        tenant_id: UUID,
        deployment_id: UUID,
        parts: list[Part],
        log: Log,
        stop: asyncio.Event,
        kill_grace: float,
    ) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.deployment_id = deployment_id
        self.parts = parts
        self.log = log
        self.stop = stop
        self.wait = settings.pool_worker_wait_seconds
        self.poll = min(
            settings.worker_heartbeat_seconds, settings.worker_poll_interval_seconds * 2
        )
        self.lost_after = max(settings.worker_lost_after_seconds, PART_WORKER_LOST_AFTER_SECONDS)
        # Parts see a cancel on their next heartbeat, then stop their scripts.
        self.stop_grace = (
            2 * settings.worker_heartbeat_seconds + kill_grace + PART_STOP_MARGIN_SECONDS
        )

    async def follow(self, *, give_up_on_stop: Callable[[], bool]) -> None:
        """Until every part has ended; once ``stop`` is set, waiting parts are withdrawn and
        running ones get ``stop_grace`` to stop (none when ``give_up_on_stop()``)."""
        stopped_at: float | None = None
        while True:
            pending = [part for part in self.parts if not part.done]
            if not pending:
                return
            if self.stop.is_set() and stopped_at is None:
                stopped_at = time.monotonic()
            if stopped_at is not None and (
                give_up_on_stop() or time.monotonic() - stopped_at > self.stop_grace
            ):
                return
            await self._check(pending, stopping=stopped_at is not None)
            if all(part.done for part in self.parts):
                return
            if stopped_at is None:
                # Woken early by a cancel, to withdraw waiting parts at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=self.poll)
            else:
                await asyncio.sleep(self.poll)

    async def _check(self, pending: list[Part], *, stopping: bool) -> None:
        async with self.db.session(system=True) as session:
            states = await job_states(
                session, [part.job_id for part in pending], alive_within=self.lost_after
            )
        for part in pending:
            state = states[part.job_id]
            if state.phase == "finished":
                part.done = True
            elif state.phase == "waiting":
                if stopping:
                    # Withdrawn before it started; its scripts end with the run's status.
                    part.done = await self._withdraw(part)
                elif time.monotonic() - part.enqueued_at >= self.wait:
                    await self._maybe_no_worker(part)
            elif not state.worker_alive:
                part.done = True
                await self.log(
                    "ERROR",
                    f"The worker running the hosts of pool {part.pool} was lost: their "
                    "unfinished scripts are marked failed.",
                )
                await end_unfinished(
                    self.db,
                    tenant_id=self.tenant_id,
                    deployment_id=self.deployment_id,
                    host_ids=part.host_ids,
                    status="failed",
                    error=f"the worker of pool {part.pool} was lost",
                )

    async def _withdraw(self, part: Part) -> bool:
        async with self.db.session(tenant_id=self.tenant_id) as session:
            return await cancel_job(session, part.job_id)

    async def _maybe_no_worker(self, part: Part) -> None:
        async with self.db.session(system=True) as session:
            alive = await pool_workers_alive(session, part.pool)
        # A pool whose workers are all busy keeps its place in the queue.
        if alive or not await self._withdraw(part):
            return
        part.done = True
        await self.log(
            "ERROR",
            f"No worker of pool {part.pool} is running: its "
            f"{_plural(len(part.host_ids), 'host')} did not run (waited {self.wait:g} s; "
            f"start one with `shipyard worker --pool {part.pool}`).",
        )
        await end_unfinished(
            self.db,
            tenant_id=self.tenant_id,
            deployment_id=self.deployment_id,
            host_ids=part.host_ids,
            status="failed",
            error=f"no worker of pool {part.pool} is running",
        )
