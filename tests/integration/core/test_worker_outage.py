"""A database that drops every connection: workers come back, the API says 503, /readyz says why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database, database_name, to_libpq_url
from shipyard.runtime import Runtime, build_runtime, close_runtime
from shipyard.worker import WorkerGaveUp, supervise_worker
from tests.support.api import Account
from tests.support.postgres import PostgresForTests


@contextmanager
def outage(postgres: PostgresForTests, database_url: str) -> Iterator[None]:
    """Refuse new connections to the test's database and end every open one, as a restart does."""
    name = database_name(database_url.split("?")[0])
    with psycopg.connect(to_libpq_url(postgres.admin_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"worker_restart_max_backoff_seconds": 0.5, "worker_poll_interval_seconds": 0.2}
    )


@pytest.fixture
async def worker_runtime(db: Database, outage_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(outage_settings, db=db)
    yield runtime
    await close_runtime(runtime)


async def job_statuses(db: Database, task: str) -> list[str]:
    async with db.session(system=True) as session:
        rows = await session.execute(
            text("SELECT status::text FROM procrastinate_jobs WHERE task_name = :task"),
            {"task": task},
        )
        return [row[0] for row in rows]


async def until(check: Any, *, seconds: float) -> None:
    for _ in range(int(seconds / 0.2)):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not true within {seconds} s")


async def test_the_worker_comes_back_after_the_database_drops_every_connection(
    postgres: PostgresForTests,
    database_url: str,
    db: Database,
    worker_runtime: Runtime,
    client: httpx.AsyncClient,
    admin: Account,
) -> None:
    worker = asyncio.create_task(
        supervise_worker(runtime=worker_runtime, concurrency=2, give_up_after=None)
    )
    try:
        await until(lambda: _ready(client), seconds=20)
        with outage(postgres, database_url):
            during = await client.get("/api/v1/hosts", headers=admin.headers)
            ready_during = await client.get("/readyz")
            await asyncio.sleep(2)
        assert during.status_code == 503
        assert during.json()["error"]["code"] == "database_unavailable"
        assert during.headers["retry-after"]
        assert ready_during.status_code == 503
        assert ready_during.json()["reason"] == "the database does not answer"
        assert not worker.done(), "the supervised worker must not stop with the database"

        queued = await client.post("/api/v1/hosts/test-all", headers=admin.headers)
        assert queued.status_code == 202

        async def ran() -> bool:
            return await job_statuses(db, "hosts:test_all_hosts") == ["succeeded"]

        await until(ran, seconds=30)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_a_worker_that_cannot_reach_the_database_gives_up_and_says_why(
    postgres: PostgresForTests, database_url: str, worker_runtime: Runtime
) -> None:
    with (
        outage(postgres, database_url),
        pytest.raises(WorkerGaveUp, match=r"kept failing .* the database does not answer"),
    ):
        await asyncio.wait_for(
            supervise_worker(runtime=worker_runtime, concurrency=1, give_up_after=1.5),
            timeout=30,
        )


async def test_readiness_names_the_missing_worker(
    db: Database, outage_settings: Settings, worker_runtime: Runtime
) -> None:
    runtime = build_runtime(outage_settings, db=db)
    app = create_app(runtime=runtime)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        alone = await http.get("/readyz")
        assert alone.status_code == 503
        assert "no worker has sent a heartbeat" in alone.json()["reason"]
        assert alone.json()["database"] == "ok"

        worker = asyncio.create_task(
            supervise_worker(runtime=worker_runtime, concurrency=1, give_up_after=None)
        )
        try:
            await until(lambda: _ready(http), seconds=20)
            body = (await http.get("/readyz")).json()
            assert body["worker"]["status"] == "alive"
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    await close_runtime(runtime)


async def test_a_pooled_connection_left_mid_query_is_replaced_not_failed(
    db: Database, client: httpx.AsyncClient, admin: Account
) -> None:
    """A connection returned with a query still in flight (an interrupted operation, or a server
    shutdown message not yet read) is swapped for a fresh one when next checked out."""
    await db.engine.dispose()
    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        busy_pid = driver.info.backend_pid
    # Behind the pool's back, as a task that outlived its checkout would.
    driver.pgconn.send_query(b"SELECT pg_sleep(0.3)")
    assert driver.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE

    async with db.engine.connect() as connection:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
    assert pid != busy_pid, "the busy connection must not be handed out again"
    response = await client.get("/api/v1/hosts", headers=admin.headers)
    assert response.status_code == 200


async def test_connections_the_server_ended_are_replaced_not_failed(
    postgres: PostgresForTests,
    database_url: str,
    db: Database,
    client: httpx.AsyncClient,
    admin: Account,
) -> None:
    """A pooled connection back from its last use moments ago is not pinged unless the server
    wrote to it. One the server ended (as a restart or pg_terminate_backend does) has a readable
    socket, so it is pinged and replaced; the token lookup's connection is replaced too."""
    assert (await client.get("/api/v1/hosts", headers=admin.headers)).status_code == 200
    name = database_name(database_url.split("?")[0])
    with psycopg.connect(to_libpq_url(postgres.admin_url), autocommit=True) as admin_connection:
        ended = admin_connection.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    assert ended is not None and ended[0] >= 2, "the request's connections were open"
    for _ in range(3):
        response = await client.get("/api/v1/hosts", headers=admin.headers)
        assert response.status_code == 200, response.text
