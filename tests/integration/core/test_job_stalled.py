"""Jobs a dead worker held (taken, or fetched and not started) wait again, if safe to rerun."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from shipyard import jobs
from shipyard.db import Database
from shipyard.runtime import Runtime
from tests.support.job_worker import job_statuses, job_worker

QUEUE = jobs.DEFAULT_QUEUE
tasks = jobs.TaskSet("stalltest")
ran: list[str] = []


@tasks.task("rerunnable", retry_when_stalled=True)
async def rerunnable(job: jobs.JobRun, label: str) -> None:
    ran.append(label)


@tasks.task("once")
async def once(job: jobs.JobRun, label: str) -> None:
    ran.append(label)


@pytest.fixture(autouse=True)
def fresh_records() -> None:
    ran.clear()


async def defer(db: Database, task: str, label: str) -> int:
    async with db.session(system=True) as session:
        return await jobs.enqueue(session, task=f"stalltest:{task}", args={"label": label})


async def statuses(db: Database) -> dict[int, str]:
    return await job_statuses(db, tasks)


async def take(app_manager: jobs.PrefetchingJobManager, worker_id: int, count: int) -> list[int]:
    """What a worker does before it runs anything: fetch ``count`` jobs in one statement."""
    app_manager.batch = count
    taken = []
    for _ in range(count):
        job = await app_manager.fetch_job(queues=[QUEUE], worker_id=worker_id)
        assert job is not None and job.id is not None
        taken.append(job.id)
    return taken


async def test_jobs_a_killed_worker_held_wait_again_and_run_when_their_task_allows(
    db: Database, runtime: Runtime, database_url: str
) -> None:
    safe_started = await defer(db, "rerunnable", "started when its worker died")
    safe_fetched = await defer(db, "rerunnable", "fetched, never started")
    unsafe = await defer(db, "once", "not safe to run twice")
    alive = await defer(db, "rerunnable", "held by a live worker")

    app = jobs.create_job_app(database_url, [tasks])
    async with app.open_async():
        # A worker takes three jobs and is killed (no hand-back, no goodbye): its heartbeat
        # stops. Another worker, alive, holds the fourth.
        dead = jobs.PrefetchingJobManager(app.connector, concurrency=4)
        dead_id = await dead.register_worker()
        assert await take(dead, dead_id, 3) == [safe_started, safe_fetched, unsafe]
        live = jobs.PrefetchingJobManager(app.connector, concurrency=4)
        live_id = await live.register_worker()
        assert await take(live, live_id, 1) == [alive]
        async with db.session(system=True) as session:
            await session.execute(
                text(
                    "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '5 minutes'"
                    " WHERE id = :id"
                ),
                {"id": dead_id},
            )

        # The periodic maintenance job, as the workers defer it, then a worker that runs what
        # waits. A worker told not to wait stops at its first empty fetch, which may come
        # while the maintenance job still runs: a second pass takes what it made wait.
        async with db.session(system=True) as session:
            await jobs.enqueue(session, task=jobs.RETRY_STALLED_TASK, args={"timestamp": 0})
        for survivor in ("survivor-1", "survivor-2"):
            await asyncio.wait_for(
                job_worker(runtime, database_url, tasks, concurrency=4, wait=False, name=survivor),
                timeout=60,
            )
        await live.unregister_worker(live_id)

    assert sorted(ran) == ["fetched, never started", "started when its worker died"]
    after = await statuses(db)
    assert after[safe_started] == after[safe_fetched] == "succeeded"
    # Left alone: a task that may not run twice, and a job whose worker is alive.
    assert after[unsafe] == "doing"
    assert after[alive] == "doing"


async def test_nothing_is_retried_while_its_worker_beats(db: Database, database_url: str) -> None:
    job_id = await defer(db, "rerunnable", "busy")
    app = jobs.create_job_app(database_url, [tasks])
    async with app.open_async():
        manager = jobs.PrefetchingJobManager(app.connector, concurrency=1)
        worker_id = await manager.register_worker()
        await take(manager, worker_id, 1)
        names = ["stalltest:rerunnable"]
        assert await jobs.retry_stalled_jobs(manager, task_names=names, stalled_after=60) == []
        # Its worker gone from the table (pruned by the others): the job is stranded, and
        # retried, once.
        await manager.unregister_worker(worker_id)
        assert await jobs.retry_stalled_jobs(manager, task_names=names, stalled_after=60) == [
            job_id
        ]
        assert await jobs.retry_stalled_jobs(manager, task_names=names, stalled_after=60) == []
    assert (await statuses(db))[job_id] == "todo"
