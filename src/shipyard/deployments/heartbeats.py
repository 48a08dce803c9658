"""One heartbeat per worker process for all the deployments it runs, and the worker's drain.

A transaction per deployment per second would, at hundreds of deployments per worker, crowd the
connection pool and delay the very deployments that are starting. One statement a second
refreshes every deployment this process runs and reports which were cancelled or taken away.

:class:`Drain` is the worker's shutdown as its deployments see it: from :meth:`Drain.begin` (the
SIGTERM) no new script or host starts; when the grace period is over (:attr:`Drain.expired`)
what still runs is stopped and the deployments end ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select, text

from shipyard.db import Database
from shipyard.deployments.claims import ClaimBatcher
from shipyard.deployments.models import Deployment

logger = logging.getLogger(__name__)


class Drain:
    """A worker's shutdown: a grace period for running scripts, then interruption."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.expired = asyncio.Event()
        self.grace: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    def begin(self, grace: float) -> None:
        """Start draining; after ``grace`` seconds what still runs is interrupted.

        Called again while draining (a second signal), it ends the grace period at once.
        """
        if self.started.is_set():
            self.expire()
            return
        self.grace = grace
        self.started.set()
        logger.warning(
            "worker shutting down: no new scripts start; running ones have %.0f s to finish",
            grace,
        )
        self._timer = asyncio.get_running_loop().call_later(grace, self.expire)

    def expire(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.expired.is_set():
            self.started.set()
            self.expired.set()


class Intake:
    """The runs this worker is claiming: a claimed run's heavy work (loading hosts, the checkout,
    SSH) waits until the worker has claimed what is due, for at most ``max_wait`` seconds.

    When a thousand runs fall due at once, each claim is one short transaction, but the first
    runs' checkouts and SSH handshakes would otherwise share the CPU with the claims of the
    later ones and make them late. A claimed run is owned, ``in_progress`` and heartbeated
    while it waits; a lone run waits ``quiet`` seconds (no other claim began meanwhile).
    The bound: claims are batched and written on the worker's ownership connections (see
    :mod:`shipyard.deployments.claims`), heartbeats too, and the worker's pools wait up to
    ``server.WORKER_POOL_TIMEOUT`` for a connection, so the heavy work of a thousand runs
    released together is slow for a few seconds but no longer fails (with the bound at 10 s
    before those changes, four in five such runs ended with pool time-outs or "worker lost").
    Within the bound, later claims do not share the CPU with earlier runs' SSH handshakes.

    The worker's job fetches count as claims under way too (``worker.run_worker`` passes
    :meth:`claiming` to the job engine): a fetch statement that takes longer than ``quiet``
    under load must not let the first runs' handshakes start while later runs are still being
    fetched.
    """

    def __init__(self, *, quiet: float = 0.02, max_wait: float = 10.0) -> None:
        self.quiet = quiet
        self.max_wait = max_wait
        self._claiming = 0
        self._settled = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        self._claiming += 1
        self._settled.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            yield
        finally:
            self._claiming -= 1
            if self._claiming == 0:
                self._timer = asyncio.get_running_loop().call_later(self.quiet, self._settle)

    def _settle(self) -> None:
        self._timer = None
        if self._claiming == 0:
            self._settled.set()

    async def settled(self) -> None:
        """Return once no claim has been under way for ``quiet`` s, or after ``max_wait`` s."""
        if self._claiming == 0 and self._timer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self.max_wait)


@dataclass
class Beat:
    """What the heartbeat tells one running deployment."""

    worker_id: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False
    lost_ownership: bool = False


class DeploymentHeartbeats:
    def __init__(self, db: Database, *, interval: float, drain: Drain | None = None) -> None:
        self._db = db
        self._interval = interval
        self._beats: dict[UUID, Beat] = {}
        # The runs beaten last round: a run dropped since then has its beat row removed.
        self._beaten: dict[UUID, str] = {}
        self._watched: dict[object, tuple[UUID, Beat]] = {}
        self.drain = drain or Drain()
        self.intake = Intake()
        self.claims = ClaimBatcher(db)

    def register(self, deployment_id: UUID, worker_id: str) -> Beat:
        beat = Beat(worker_id=worker_id)
        self._beats[deployment_id] = beat
        return beat

    def unregister(self, deployment_id: UUID) -> None:
        self._beats.pop(deployment_id, None)

    def watch(self, key: object, deployment_id: UUID, coordinator_id: str) -> Beat:
        """Follow a deployment another worker runs (this one runs a part of it): its beat stops
        on a cancel request, or when the run ended or changed hands."""
        beat = Beat(worker_id=coordinator_id)
        self._watched[key] = (deployment_id, beat)
        return beat

    def unwatch(self, key: object) -> None:
        self._watched.pop(key, None)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.beat()
            except Exception:
                logger.warning("deployment heartbeat failed; retrying", exc_info=True)

    async def beat(self) -> None:
        await self._beat_owned()
        await self._follow_watched()

    async def _follow_watched(self) -> None:
        watched = dict(self._watched)
        if not watched:
            return
        ids = {deployment_id for deployment_id, _ in watched.values()}
        async with self._db.heartbeat_session() as session:
            rows = (
                await session.execute(
                    select(
                        Deployment.id,
                        Deployment.status,
                        Deployment.worker_id,
                        Deployment.cancel_requested_at,
                    ).where(Deployment.id.in_(ids))
                )
            ).all()
        found = {row.id: row for row in rows}
        for deployment_id, beat in watched.values():
            row = found.get(deployment_id)
            if row is None or row.status != "in_progress" or row.worker_id != beat.worker_id:
                beat.lost_ownership = True
                beat.stop.set()
            elif row.cancel_requested_at is not None and not beat.cancelled:
                beat.cancelled = True
                beat.stop.set()

    async def _beat_owned(self) -> None:
        beats = dict(self._beats)
        gone = {key: worker for key, worker in self._beaten.items() if key not in beats}
        if not beats and not gone:
            return
        ids = list(beats)
        # Each run this worker still owns, with its cancel request.
        alive: dict[UUID, datetime | None] = {}
        # System scope: one worker runs deployments of many tenants. The beat reads the runs'
        # rows and writes its own table: a run's log writer holds the run's row while it stores
        # a batch, and a beat that waited for it stalled every run of this worker (0017).
        async with self._db.heartbeat_session() as session:
            if ids:
                workers = [beats[deployment_id].worker_id for deployment_id in ids]
                result = await session.execute(
                    _BEAT, {"ids": ids, "workers": workers, "now": datetime.now(UTC)}
                )
                alive = {row.id: row.cancel_requested_at for row in result}
            if gone:
                # Finished runs (their final status is written before the beat is dropped).
                await session.execute(_FORGET, {"ids": list(gone), "workers": list(gone.values())})
        self._beaten = {deployment_id: beat.worker_id for deployment_id, beat in beats.items()}
        for deployment_id, beat in beats.items():
            if deployment_id not in alive:
                # Another worker declared this one lost and finished it: stop quietly.
                beat.lost_ownership = True
                beat.stop.set()
            elif alive[deployment_id] is not None and not beat.cancelled:
                beat.cancelled = True
                beat.stop.set()


# The runs this worker still owns (in progress, its worker id), with their cancel requests; each
# gets a beat. A plain read of ``deployments``: it waits for no row lock.
_BEAT = text(
    """
    WITH mine AS (
        SELECT d.id, d.cancel_requested_at, k.worker_id
          FROM unnest(CAST(:ids AS uuid[]), CAST(:workers AS text[])) AS k(id, worker_id)
          JOIN deployments AS d ON d.id = k.id AND d.worker_id = k.worker_id
         WHERE d.status = 'in_progress'
    ),
    beat AS (
        INSERT INTO deployment_heartbeats (deployment_id, worker_id, beat_at)
        SELECT id, worker_id, :now FROM mine
        ON CONFLICT (deployment_id)
        DO UPDATE SET worker_id = EXCLUDED.worker_id, beat_at = EXCLUDED.beat_at
    )
    SELECT id, cancel_requested_at FROM mine
    """
)
# Only this worker's own beats: a run it lost may beat on another worker now.
_FORGET = text(
    """
    DELETE FROM deployment_heartbeats AS h
     USING unnest(CAST(:ids AS uuid[]), CAST(:workers AS text[])) AS k(id, worker_id)
     WHERE h.deployment_id = k.id AND h.worker_id = k.worker_id
    """
)
