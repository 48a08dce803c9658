"""Log lines numbered at write time (0016): blocks per batch, shared by a run's writers, given
back by a rolled-back batch, and in the run's seq order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID

import psycopg
import pytest
from sqlalchemy import select

from shipyard.db import Database
from shipyard.deployments.logs import LogWriter
from shipyard.deployments.models import Deployment, DeploymentLog
from shipyard.deployments.redaction import Redactor
from tests.integration.deployments.test_log_reads import seed_log
from tests.support.api import Account


def _writer(db: Database, account: Account, deployment_id: UUID) -> LogWriter:
    return LogWriter(
        db,
        tenant_id=UUID(account.tenant_id),
        deployment_id=deployment_id,
        redactor=Redactor([]),
        flush_interval=0.005,
        batch_size=250,
    )


async def _stored(db: Database, deployment_id: UUID) -> tuple[list[tuple[int, str]], int | None]:
    """(line number, message) in seq order, and the run's ``log_lines``."""
    async with db.session(system=True) as session:
        rows = (
            await session.execute(
                select(DeploymentLog.line_no, DeploymentLog.message)
                .where(DeploymentLog.deployment_id == deployment_id)
                .order_by(DeploymentLog.seq)
            )
        ).all()
        log_lines = await session.scalar(
            select(Deployment.log_lines).where(Deployment.id == deployment_id)
        )
    return [(int(row.line_no), row.message) for row in rows], log_lines


async def test_two_writers_of_one_run_never_share_numbers(admin: Account, db: Database) -> None:
    # A pool's parts: two writers of one run at once, many small batches each, plus Shipyard's
    # own events through the ORM (the trigger) in between.
    run = await seed_log(db, admin, [], status="in_progress", numbering="trigger")
    now = datetime.now(UTC)

    async def part(name: str) -> None:
        async with _writer(db, admin, run.deployment_id) as writer:
            for block in range(20):
                await writer.write_lines(
                    "stdout",
                    [f"{name} {block:02d} {n:03d}" for n in range(100)],
                    timestamp=now,
                    host_id=None,
                    deployment_script_id=None,
                )
                await writer.write("INFO", f"{name} {block:02d} event")
                await asyncio.sleep(0.001)

    async def events() -> None:
        for n in range(10):
            async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
                session.add(
                    DeploymentLog(deployment_id=run.deployment_id, level="WARNING", message=f"{n}")
                )
            await asyncio.sleep(0.01)

    await asyncio.gather(part("a"), part("b"), events())
    stored, log_lines = await _stored(db, run.deployment_id)
    total = 2 * 20 * 101 + 10
    # Every number once, in seq order: 1..N, and the run knows N.
    assert [number for number, _ in stored] == list(range(1, total + 1))
    assert log_lines == total
    # Each writer's lines in the order it wrote them.
    for name in ("a", "b"):
        mine = [message for _, message in stored if message.startswith(name)]
        assert mine == sorted(mine) and len(mine) == 20 * 101


async def test_a_rolled_back_batch_gives_its_numbers_back(admin: Account, db: Database) -> None:
    run = await seed_log(db, admin, [], status="in_progress", numbering="trigger")
    failing = _writer(db, admin, run.deployment_id)
    await failing.write("INFO", "first")
    await failing.write("LOUD", "not a level: the COPY fails")
    with pytest.raises(psycopg.errors.CheckViolation):
        await failing.flush()
    assert await _stored(db, run.deployment_id) == ([], 0)

    async with _writer(db, admin, run.deployment_id) as writer:
        await writer.write("INFO", "again")
    assert await _stored(db, run.deployment_id) == ([(1, "again")], 1)


async def test_a_run_logged_before_0016_stays_unnumbered(admin: Account, db: Database) -> None:
    run = await seed_log(db, admin, [], status="in_progress", numbering="none")
    async with _writer(db, admin, run.deployment_id) as writer:
        await writer.write("INFO", "old run")
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        session.add(DeploymentLog(deployment_id=run.deployment_id, message="event"))
    async with db.session(system=True) as session:
        rows = (
            await session.execute(
                select(DeploymentLog.line_no).where(
                    DeploymentLog.deployment_id == run.deployment_id
                )
            )
        ).all()
        log_lines = await session.scalar(
            select(Deployment.log_lines).where(Deployment.id == run.deployment_id)
        )
    assert [row.line_no for row in rows] == [None, None] and log_lines is None
