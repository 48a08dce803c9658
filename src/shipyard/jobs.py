"""The procrastinate job engine: app construction, transactional enqueueing, workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from datetime import datetime
from typing import Any

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.db import Database, to_libpq_url

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
FINISHED_JOB_RETENTION_HOURS = 72

maintenance = procrastinate.Blueprint()


@maintenance.periodic(cron="17 * * * *")
@maintenance.task(
    name="prune_finished_jobs", pass_context=True, queueing_lock="prune_finished_jobs"
)
async def prune_finished_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Delete finished job rows (periodic sweeps add many) after a few days."""
    await context.app.job_manager.delete_old_jobs(
        nb_hours=FINISHED_JOB_RETENTION_HOURS,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )


def _blueprints() -> dict[str, procrastinate.Blueprint]:
    """Each domain's tasks, keyed by namespace (task names read ``namespace:task``)."""
    from shipyard.cicd.tasks import blueprint as cicd_tasks
    from shipyard.deployments.tasks import blueprint as deployment_tasks
    from shipyard.git.tasks import blueprint as git_tasks
    from shipyard.hosts.tasks import blueprint as host_tasks

    return {
        "deployments": deployment_tasks,
        "git": git_tasks,
        "hosts": host_tasks,
        "cicd": cicd_tasks,
        "maintenance": maintenance,
    }


def _copy_blueprint(source: procrastinate.Blueprint) -> procrastinate.Blueprint:
    """A fresh blueprint with the same tasks and periodic schedules.

    procrastinate binds a blueprint's tasks to the first app that loads it (it renames them in
    place), so every app gets its own copy and the domain modules' declarations stay untouched:
    several apps in one process (tests, benchmarks) then work, and no module state changes.
    """
    copy = procrastinate.Blueprint()
    copies: dict[int, Any] = {}
    for name, task in source.tasks.items():
        options: dict[str, Any] = {
            "name": name,
            "aliases": list(task.aliases),
            "retry": task.retry_strategy or False,
            "pass_context": task.pass_context,
            "queue": task.queue,
            "priority": task.priority,
            "lock": task.lock,
            "queueing_lock": task.queueing_lock,
        }
        copies[id(task)] = copy.task(**options)(task.func)
    for periodic in source.periodic_registry.periodic_tasks.values():
        copy.periodic_registry.register_task(
            task=copies[id(periodic.task)],
            cron=periodic.cron,
            periodic_id=periodic.periodic_id,
            configure_kwargs=periodic.configure_kwargs,
        )
    return copy


def create_job_app(database_url: str) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=to_libpq_url(database_url))
    )
    for namespace, blueprint in _blueprints().items():
        app.add_tasks_from(_copy_blueprint(blueprint), namespace=namespace)
    return app


async def enqueue(
    session: AsyncSession,
    *,
    task: str,
    args: dict[str, Any],
    queue: str = DEFAULT_QUEUE,
    scheduled_at: datetime | None = None,
    lock: str | None = None,
    queueing_lock: str | None = None,
    priority: int = 0,
) -> int:
    """Defer ``task`` inside the session's transaction: the job exists only if the rows commit."""
    result = await session.execute(
        text(
            "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW("
            ":queue, :task, :priority, :lock, :queueing_lock, CAST(:args AS jsonb), :scheduled_at"
            ")::procrastinate_job_to_defer_v1]))"
        ),
        {
            "queue": queue,
            "task": task,
            "priority": priority,
            "lock": lock,
            "queueing_lock": queueing_lock,
            "args": json.dumps(args),
            "scheduled_at": scheduled_at,
        },
    )
    return int(result.scalar_one())


async def cancel_job(session: AsyncSession, job_id: int) -> bool:
    """Cancel a job that has not started; True when it was still waiting."""
    result = await session.execute(
        text("SELECT procrastinate_cancel_job_v1(:job_id, false, false)"), {"job_id": job_id}
    )
    return result.scalar_one_or_none() is not None


def worker_name() -> str:
    return f"{socket.gethostname()}-{id(object()):x}"


async def run_worker(
    *,
    settings: Settings,
    db: Database,
    concurrency: int,
    name: str | None = None,
    wait: bool = True,
) -> None:
    """Run a worker on every queue until stopped (or, with ``wait=False``, until idle)."""
    from shipyard.deployments.heartbeats import DeploymentHeartbeats

    app = create_job_app(db.url)
    heartbeats = DeploymentHeartbeats(db, interval=settings.worker_heartbeat_seconds)
    beating = asyncio.create_task(heartbeats.run(), name="deployment-heartbeats")
    try:
        async with app.open_async():
            await app.run_worker_async(
                concurrency=concurrency,
                name=name or worker_name(),
                wait=wait,
                additional_context={"db": db, "settings": settings, "heartbeats": heartbeats},
                install_signal_handlers=False,
                # Scheduled jobs are found by polling; this bounds how late one can start.
                fetch_job_polling_interval=settings.worker_poll_interval_seconds,
            )
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


def context_db(context: procrastinate.JobContext) -> Database:
    db: Database = context.additional_context["db"]
    return db


def context_settings(context: procrastinate.JobContext) -> Settings:
    settings: Settings = context.additional_context["settings"]
    return settings
