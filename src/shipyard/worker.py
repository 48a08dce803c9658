"""The worker: runs every domain's background tasks against one database, on the runtime."""

from __future__ import annotations

import asyncio
import contextlib

from shipyard.cicd.tasks import tasks as cicd_tasks
from shipyard.deployments.heartbeats import DeploymentHeartbeats
from shipyard.deployments.tasks import tasks as deployment_tasks
from shipyard.git.tasks import tasks as git_tasks
from shipyard.hosts.tasks import tasks as host_tasks
from shipyard.jobs import TaskSet, create_job_app, run_job_worker, worker_name
from shipyard.runtime import Runtime

TASK_SETS: tuple[TaskSet, ...] = (deployment_tasks, git_tasks, host_tasks, cicd_tasks)


async def run_worker(
    *,
    runtime: Runtime,
    concurrency: int,
    name: str | None = None,
    wait: bool = True,
) -> None:
    """Run a worker on every queue until stopped (or, with ``wait=False``, until idle)."""
    settings = runtime.settings
    app = create_job_app(runtime.db.url, TASK_SETS)
    heartbeats = DeploymentHeartbeats(runtime.db, interval=settings.worker_heartbeat_seconds)
    beating = asyncio.create_task(heartbeats.run(), name="deployment-heartbeats")
    try:
        await run_job_worker(
            app,
            concurrency=concurrency,
            name=name or worker_name(),
            context={"runtime": runtime, "heartbeats": heartbeats},
            poll_interval=settings.worker_poll_interval_seconds,
            wait=wait,
        )
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
