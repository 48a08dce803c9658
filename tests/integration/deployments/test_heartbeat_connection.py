"""A worker's heartbeat has a connection of its own: busy pools never make its runs look lost."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shipyard.db import Database
from shipyard.deployments.heartbeats import Beat, DeploymentHeartbeats
from shipyard.deployments.models import Deployment, DeploymentHeartbeat, DeploymentLog
from shipyard.deployments.recovery import recover_lost_deployments
from shipyard.runtime import Runtime
from tests.support.api import Account

WORKER = "worker-a#1"


async def _running(db: Database, account: Account, name: str, since: datetime) -> UUID:
    """A run in progress on ``WORKER``, claimed and last beaten at ``since``."""
    async with db.session(system=True) as session:
        deployment = Deployment(
            tenant_id=UUID(account.tenant_id),
            name=name,
            status="in_progress",
            worker_id=WORKER,
            started_at=since,
            heartbeat_at=since,
            log_lines=0,
        )
        session.add(deployment)
        await session.flush()
        return deployment.id


async def _worker_running(
    db: Database, account: Account, *names: str
) -> tuple[datetime, list[UUID], DeploymentHeartbeats, list[Beat]]:
    """Runs last heard from five minutes ago, now beaten by one worker's heartbeats."""
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    runs = [await _running(db, account, name, long_ago) for name in names]
    heartbeats = DeploymentHeartbeats(db, interval=1.0)
    beats = [heartbeats.register(run, WORKER) for run in runs]
    return long_ago, runs, heartbeats, beats


async def test_the_heartbeat_is_not_queued_behind_a_saturated_pool(
    db: Database, admin: Account
) -> None:
    long_ago, (deployment_id,), heartbeats, (beat,) = await _worker_running(
        db, admin, "busy worker"
    )

    # Every connection the runs' pools can give out is taken (each in a transaction), as when
    # hundreds of runs write their logs at once.
    pool = db.system_engine.pool
    held: list[AsyncConnection] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(pool.size() + db.system_engine.pool._max_overflow):  # type: ignore[attr-defined]
            connection = await stack.enter_async_context(db.system_engine.connect())
            await connection.execute(text("SELECT 1"))
            held.append(connection)
        await asyncio.wait_for(heartbeats.beat(), timeout=5)
        assert not beat.lost_ownership and not beat.stop.is_set()

    stamped = await _last_beat(db, deployment_id)
    assert stamped is not None and stamped > long_ago


async def _last_beat(db: Database, deployment_id: UUID) -> datetime | None:
    async with db.session(system=True) as session:
        return await session.scalar(
            select(DeploymentHeartbeat.beat_at).where(
                DeploymentHeartbeat.deployment_id == deployment_id
            )
        )


async def test_a_run_whose_log_writer_holds_its_row_keeps_beating_and_so_do_the_others(
    db: Database, admin: Account, runtime: Runtime
) -> None:
    # A chatty run's log writer holds its run's row while it numbers and stores a batch (0016);
    # on a busy worker that lasts seconds. No run of the worker may go unbeaten meanwhile, or
    # the sweep ends live runs as lost.
    long_ago, (chatty, quiet), heartbeats, beats = await _worker_running(
        db, admin, "chatty", "quiet"
    )

    async with db.system_engine.connect() as writer:
        # What the writer's batch transaction does first: take a block of line numbers.
        await writer.execute(
            text("UPDATE deployments SET log_lines = log_lines + 5000 WHERE id = :id"),
            {"id": chatty},
        )
        await asyncio.wait_for(heartbeats.beat(), timeout=5)
        assert runtime.settings.worker_lost_after_seconds < 300
        # The sweep skips the held row; the other run is free to take, and alive.
        assert await recover_lost_deployments(runtime=runtime) == []
        await writer.rollback()

    assert not any(beat.stop.is_set() for beat in beats)
    for run in (chatty, quiet):
        stamped = await _last_beat(db, run)
        assert stamped is not None and stamped > long_ago
    # With the row free again, the sweep still finds both alive.
    assert await recover_lost_deployments(runtime=runtime) == []
    async with db.session(system=True) as session:
        statuses = (
            await session.scalars(
                select(Deployment.status).where(Deployment.id.in_([chatty, quiet]))
            )
        ).all()
    assert statuses == ["in_progress", "in_progress"]


async def test_a_finished_run_loses_its_beat_row_and_a_lost_one_keeps_its_last_beat(
    db: Database, admin: Account, runtime: Runtime
) -> None:
    long_ago, (finished, lost), heartbeats, _ = await _worker_running(db, admin, "finished", "lost")
    await heartbeats.beat()
    beaten = await _last_beat(db, lost)
    assert beaten is not None and beaten > long_ago

    # The finished run is dropped from the beat: its row goes on the next round.
    async with db.session(system=True) as session:
        await session.execute(
            update(Deployment).where(Deployment.id == finished).values(status="success")
        )
    heartbeats.unregister(finished)
    await heartbeats.beat()
    assert await _last_beat(db, finished) is None

    # The other's worker dies: its beat ages past the limit, and the sweep ends it, saying
    # when it last beat.
    async with db.session(system=True) as session:
        await session.execute(
            update(DeploymentHeartbeat)
            .where(DeploymentHeartbeat.deployment_id == lost)
            .values(beat_at=long_ago + timedelta(seconds=1))
        )
    assert await recover_lost_deployments(runtime=runtime) == [lost]
    async with db.session(system=True) as session:
        row = (
            await session.execute(
                select(Deployment.status, Deployment.heartbeat_at).where(Deployment.id == lost)
            )
        ).one()
        messages = (
            await session.scalars(
                select(DeploymentLog.message).where(DeploymentLog.deployment_id == lost)
            )
        ).all()
    assert row.status == "failed"
    assert row.heartbeat_at == long_ago + timedelta(seconds=1)
    assert await _last_beat(db, lost) is None
    expected = f"{long_ago + timedelta(seconds=1):%Y-%m-%d %H:%M:%S}"
    assert any("was lost" in message and expected in message for message in messages)
