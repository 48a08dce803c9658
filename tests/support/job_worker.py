"""A procrastinate worker of the test's own task set, and the states of that set's jobs."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from sqlalchemy import text

from shipyard import jobs
from shipyard.db import Database
from shipyard.runtime import Runtime


def job_worker(
    runtime: Runtime,
    database_url: str,
    task_set: jobs.TaskSet,
    *,
    concurrency: int,
    wait: bool,
    name: str,
) -> Coroutine[Any, Any, None]:
    """``shipyard worker``'s job loop for ``task_set`` alone (``wait=False``: until idle)."""
    return jobs.run_job_worker(
        jobs.create_job_app(database_url, [task_set]),
        concurrency=concurrency,
        name=name,
        context={"runtime": runtime},
        poll_interval=0.1,
        wait=wait,
        shutdown_timeout=5,
        database_url=database_url,
    )


async def job_statuses(db: Database, task_set: jobs.TaskSet) -> dict[int, str]:
    """Each job of ``task_set``'s tasks: its procrastinate status."""
    async with db.session(system=True) as session:
        rows = await session.execute(
            text("SELECT id, status::text FROM procrastinate_jobs WHERE task_name LIKE :prefix"),
            {"prefix": f"{task_set.namespace}:%"},
        )
        return {int(job_id): str(status) for job_id, status in rows}
