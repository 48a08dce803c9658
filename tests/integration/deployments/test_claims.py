"""Claiming runs in batches: runs fetched together are claimed in one transaction, each at most
once, a cancel requested before the start ends the run, and busy pools never delay a claim."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shipyard.db import Database
from shipyard.deployments.claims import ClaimBatcher, ClaimOutcome
from shipyard.deployments.models import Deployment
from tests.integration.core.test_worker_outage import outage
from tests.support.api import Account
from tests.support.postgres import PostgresForTests


async def _pending(db: Database, tenant_id: UUID, count: int, **fields: object) -> list[UUID]:
    async with db.session(system=True) as session:
        rows = [
            Deployment(tenant_id=tenant_id, name=f"claim {index}", status="pending", **fields)
            for index in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def _rows(db: Database, ids: list[UUID]) -> dict[UUID, Deployment]:
    async with db.session(system=True) as session:
        found = (await session.scalars(select(Deployment).where(Deployment.id.in_(ids)))).all()
        return {row.id: row for row in found}


async def test_runs_fetched_together_are_claimed_in_few_transactions(
    db: Database, admin: Account
) -> None:
    tenant_id = UUID(admin.tenant_id)
    ids = await _pending(db, tenant_id, 60)
    claims = ClaimBatcher(db)

    outcomes = await asyncio.gather(
        *(
            claims.claim(deployment_id=run, tenant_id=tenant_id, worker_id=f"w#{index}")
            for index, run in enumerate(ids)
        )
    )

    assert outcomes == [ClaimOutcome.CLAIMED] * 60
    # The first claim goes alone; the others gathered while it was written.
    assert sum(claims.batches) == 60 and len(claims.batches) <= 3, claims.batches
    rows = await _rows(db, ids)
    for index, run in enumerate(ids):
        row = rows[run]
        assert row.status == "in_progress" and row.worker_id == f"w#{index}"
        assert row.started_at is not None and row.heartbeat_at is not None


async def test_a_run_is_claimed_once_and_a_cancel_before_the_start_ends_it(
    db: Database, admin: Account
) -> None:
    tenant_id = UUID(admin.tenant_id)
    (run,) = await _pending(db, tenant_id, 1)
    (cancelled,) = await _pending(db, tenant_id, 1)
    (finished,) = await _pending(db, tenant_id, 1)
    async with db.session(system=True) as session:
        await session.execute(
            text("UPDATE deployments SET cancel_requested_at = now() WHERE id = :id"),
            {"id": cancelled},
        )
        await session.execute(
            text("UPDATE deployments SET status = 'success' WHERE id = :id"), {"id": finished}
        )
    first, second = ClaimBatcher(db), ClaimBatcher(db)

    # Two workers given the same run (a duplicate delivery): one claims it.
    results = await asyncio.gather(
        first.claim(deployment_id=run, tenant_id=tenant_id, worker_id="a#1"),
        second.claim(deployment_id=run, tenant_id=tenant_id, worker_id="b#1"),
    )
    assert sorted(r.value for r in results) == ["claimed", "skipped"]
    # The same run twice in one batch of one worker: claimed for the first asker only.
    (again,) = await _pending(db, tenant_id, 1)
    twice = await asyncio.gather(
        first.claim(deployment_id=again, tenant_id=tenant_id, worker_id="a#2"),
        first.claim(deployment_id=again, tenant_id=tenant_id, worker_id="a#3"),
    )
    assert list(twice) == [ClaimOutcome.CLAIMED, ClaimOutcome.SKIPPED]

    assert (
        await first.claim(deployment_id=cancelled, tenant_id=tenant_id, worker_id="a#4")
        == ClaimOutcome.CANCELLED
    )
    assert (
        await first.claim(deployment_id=finished, tenant_id=tenant_id, worker_id="a#5")
        == ClaimOutcome.SKIPPED
    )
    # A run of another tenant is never claimed under this tenant's id.
    assert (
        await first.claim(deployment_id=run, tenant_id=UUID(int=7), worker_id="a#6")
        == ClaimOutcome.SKIPPED
    )
    rows = await _rows(db, [run, cancelled, finished, again])
    assert rows[run].status == "in_progress" and rows[run].worker_id in {"a#1", "b#1"}
    assert rows[again].worker_id == "a#2"
    assert rows[cancelled].status == "cancelled" and rows[cancelled].completed_at is not None
    assert rows[cancelled].worker_id is None
    assert rows[finished].status == "success"


async def test_claims_do_not_wait_behind_a_saturated_pool(db: Database, admin: Account) -> None:
    tenant_id = UUID(admin.tenant_id)
    ids = await _pending(db, tenant_id, 5)
    claims = ClaimBatcher(db)
    # Every connection of the pools the runs' log writes and reads use is taken.
    async with contextlib.AsyncExitStack() as stack:
        held: list[AsyncConnection] = []
        for engine in {db.engine, db.system_engine}:
            for _ in range(engine.pool.size() + engine.pool._max_overflow):  # type: ignore[attr-defined]
                connection = await stack.enter_async_context(engine.connect())
                await connection.execute(text("SELECT 1"))
                held.append(connection)
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(claims.claim(deployment_id=r, tenant_id=tenant_id, worker_id="w#1") for r in ids)
            ),
            timeout=5,
        )
    assert outcomes == [ClaimOutcome.CLAIMED] * 5


async def test_a_claim_sent_again_by_its_own_job_is_still_its_own(
    db: Database, admin: Account
) -> None:
    """A claim resent after a lost connection (its first outcome unknown) claims once."""
    tenant_id = UUID(admin.tenant_id)
    (run,) = await _pending(db, tenant_id, 1)
    first, again = ClaimBatcher(db), ClaimBatcher(db)
    assert (
        await first.claim(deployment_id=run, tenant_id=tenant_id, worker_id="w#1")
        == ClaimOutcome.CLAIMED
    )
    assert (
        await again.claim(deployment_id=run, tenant_id=tenant_id, worker_id="w#1")
        == ClaimOutcome.CLAIMED
    )
    assert (
        await again.claim(deployment_id=run, tenant_id=tenant_id, worker_id="w#2")
        == ClaimOutcome.SKIPPED
    )
    assert (await _rows(db, [run]))[run].worker_id == "w#1"


async def test_claims_go_on_after_the_database_dropped_their_connection(
    db: Database, admin: Account, postgres: PostgresForTests, database_url: str
) -> None:
    tenant_id = UUID(admin.tenant_id)
    before, after = await _pending(db, tenant_id, 2)
    claims = ClaimBatcher(db)
    assert (
        await claims.claim(deployment_id=before, tenant_id=tenant_id, worker_id="w#1")
        == ClaimOutcome.CLAIMED
    )
    # A restart: every connection ends, the claims' own one included.
    with outage(postgres, database_url):
        pass
    assert (
        await claims.claim(deployment_id=after, tenant_id=tenant_id, worker_id="w#2")
        == ClaimOutcome.CLAIMED
    )
    assert (await _rows(db, [after]))[after].status == "in_progress"
