"""A worker's heartbeat has a connection of its own: busy pools never make its runs look lost."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shipyard.db import Database
from shipyard.deployments.heartbeats import DeploymentHeartbeats
from shipyard.deployments.models import Deployment
from tests.support.api import Account


async def test_the_heartbeat_is_not_queued_behind_a_saturated_pool(
    db: Database, admin: Account
) -> None:
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with db.session(system=True) as session:
        deployment = Deployment(
            tenant_id=UUID(admin.tenant_id),
            name="busy worker",
            status="in_progress",
            worker_id="worker-a#1",
            heartbeat_at=long_ago,
        )
        session.add(deployment)
        await session.flush()
        deployment_id = deployment.id

    # Every connection the runs' pools can give out is taken (each in a transaction), as when
    # hundreds of runs write their logs at once.
    pool = db.system_engine.pool
    held: list[AsyncConnection] = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(pool.size() + db.system_engine.pool._max_overflow):  # type: ignore[attr-defined]
            connection = await stack.enter_async_context(db.system_engine.connect())
            await connection.execute(text("SELECT 1"))
            held.append(connection)
        heartbeats = DeploymentHeartbeats(db, interval=1.0)
        beat = heartbeats.register(deployment_id, "worker-a#1")
        await asyncio.wait_for(heartbeats.beat(), timeout=5)
        assert not beat.lost_ownership and not beat.stop.is_set()

    async with db.session(system=True) as session:
        stamped = await session.scalar(
            select(Deployment.heartbeat_at).where(Deployment.id == deployment_id)
        )
    assert stamped is not None and stamped > long_ago
