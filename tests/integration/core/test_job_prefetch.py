"""A worker fetches a burst of jobs several per statement, never more than it can start at once."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from shipyard import jobs
from shipyard.db import Database, to_libpq_url
from shipyard.runtime import Runtime
from tests.support.job_worker import job_statuses, job_worker

QUEUE = jobs.DEFAULT_QUEUE
tasks = jobs.TaskSet("prefetchtest")
ran: list[int] = []
running: list[int] = []
peak: list[int] = [0]
release = asyncio.Event()


@tasks.task("count")
async def count(job: jobs.JobRun, index: int) -> None:
    running.append(index)
    peak[0] = max(peak[0], len(running))
    await asyncio.sleep(0.01)
    running.remove(index)
    ran.append(index)


@tasks.task("hold")
async def hold(job: jobs.JobRun, index: int) -> None:
    ran.append(index)
    await release.wait()


@pytest.fixture(autouse=True)
def fresh_records() -> None:
    ran.clear()
    running.clear()
    peak[0] = 0
    release.clear()


async def defer(db: Database, task: str, count: int) -> list[int]:
    async with db.session(system=True) as session:
        return await jobs.enqueue_many(
            session, task=f"prefetchtest:{task}", jobs=[({"index": i}, None) for i in range(count)]
        )


async def statuses(db: Database) -> dict[int, str]:
    return await job_statuses(db, tasks)


def worker(
    runtime: Runtime, database_url: str, *, concurrency: int, wait: bool, name: str
) -> asyncio.Task[None]:
    return asyncio.create_task(
        job_worker(runtime, database_url, tasks, concurrency=concurrency, wait=wait, name=name)
    )


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_burst_runs_every_job_once_within_the_worker_s_concurrency(
    db: Database, runtime: Runtime, database_url: str
) -> None:
    ids = await defer(db, "count", 150)
    await asyncio.wait_for(
        worker(runtime, database_url, concurrency=8, wait=False, name="burst"), timeout=60
    )
    assert sorted(ran) == list(range(150))
    assert 1 < peak[0] <= 8
    assert set((await statuses(db)).values()) == {"succeeded"}
    assert sorted(await statuses(db)) == sorted(ids)


async def test_a_worker_never_holds_more_jobs_than_it_can_start(
    db: Database, runtime: Runtime, database_url: str
) -> None:
    await defer(db, "hold", 10)
    busy = worker(runtime, database_url, concurrency=2, wait=True, name="busy")
    free: asyncio.Task[None] | None = None
    try:
        for _ in range(100):
            if len(ran) == 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert len(ran) == 2
        # A job fetched beyond the two slots would be 'doing' without running: held from others.
        assert list((await statuses(db)).values()).count("doing") == 2
        free = worker(runtime, database_url, concurrency=8, wait=True, name="free")
        for _ in range(100):
            if len(ran) == 10:
                break
            await asyncio.sleep(0.1)
        assert sorted(ran) == list(range(10)), "the free worker ran the eight waiting jobs"
    finally:
        release.set()
        await stop(busy)
        if free is not None:
            await stop(free)


async def test_jobs_fetched_but_not_started_go_back_to_the_queue(
    db: Database, database_url: str
) -> None:
    ids = await defer(db, "count", 4)
    app = jobs.create_job_app(database_url, [tasks])
    async with app.open_async():
        manager = jobs.PrefetchingJobManager(app.connector, concurrency=4)
        worker_id = await manager.register_worker()
        manager.batch = 4
        first = await manager.fetch_job(queues=[QUEUE], worker_id=worker_id)
        assert first is not None and first.id == ids[0]
        assert sorted((await statuses(db)).values()) == ["doing"] * 4
        async with await psycopg.AsyncConnection.connect(
            to_libpq_url(database_url), autocommit=True
        ) as listener:
            await listener.execute(f'LISTEN "{jobs.queue_channel(QUEUE)}"')
            assert await manager.hand_back() == 3
            heard = [note async for note in listener.notifies(timeout=5, stop_after=1)]
        assert heard, "the workers are told that jobs wait again"
        await manager.unregister_worker(worker_id)
    after = await statuses(db)
    assert after[ids[0]] == "doing"
    assert [after[job_id] for job_id in ids[1:]] == ["todo"] * 3
