"""The worker: runs every domain's background tasks against one database, on the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Iterable

from sqlalchemy import text

from shipyard.accounts.tasks import tasks as account_tasks
from shipyard.approvals.tasks import tasks as approval_tasks
from shipyard.audit.tasks import tasks as audit_tasks
from shipyard.cicd.tasks import tasks as cicd_tasks
from shipyard.deployments.heartbeats import DeploymentHeartbeats, Drain
from shipyard.deployments.tasks import tasks as deployment_tasks
from shipyard.git.tasks import tasks as git_tasks
from shipyard.hosts.tasks import tasks as host_tasks
from shipyard.jobs import TaskSet, create_job_app, run_job_worker, worker_name
from shipyard.notifications.tasks import tasks as notification_tasks
from shipyard.runtime import Runtime
from shipyard.schedules.tasks import tasks as schedule_tasks
from shipyard.sso.tasks import tasks as sso_tasks

logger = logging.getLogger(__name__)

TASK_SETS: tuple[TaskSet, ...] = (
    deployment_tasks,
    git_tasks,
    host_tasks,
    cicd_tasks,
    account_tasks,
    schedule_tasks,
    notification_tasks,
    approval_tasks,
    audit_tasks,
    sso_tasks,
)
# A worker that ran this long before stopping was healthy: its next failure starts a new count.
HEALTHY_RUN_SECONDS = 60.0
FIRST_RESTART_DELAY = 0.5
# Beyond the drain's grace: time to stop remote processes (TERM, then KILL) and record results
# before the job engine cancels whatever is still running.
SHUTDOWN_MARGIN_SECONDS = 20.0


def parse_pools(value: str | Iterable[str]) -> list[str]:
    """Pool names from ``--pool`` values or SHIPYARD_WORKER_POOLS: comma lists, blanks dropped."""
    items = [value] if isinstance(value, str) else list(value)
    names = {name.strip() for item in items for name in item.split(",")}
    return sorted(name for name in names if name)


_open_file_limit_logged = False


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's open-file soft limit to its hard limit; returns (soft, hard).

    A run over a thousand hosts holds thousands of sockets, beyond the usual soft limit of
    1,024. Logged once per process.
    """
    global _open_file_limit_logged
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %s: %s", soft, exc)
    if not _open_file_limit_logged:
        _open_file_limit_logged = True
        logger.info("open-file limit: %s (hard limit %s)", soft, hard)
    return soft, hard


class WorkerGaveUp(Exception):
    """The worker could not keep running (the database stayed away) and stopped trying."""


async def run_worker(
    *,
    runtime: Runtime,
    concurrency: int,
    name: str | None = None,
    wait: bool = True,
    drain: Drain | None = None,
    pools: Iterable[str] | None = None,
) -> None:
    """Run a worker until stopped (or, with ``wait=False``, until idle): unpooled jobs, and the
    jobs of ``pools`` (default: SHIPYARD_WORKER_POOLS).

    To shut down gracefully, call ``drain.begin(grace)`` and then cancel this: no new job
    starts, running deployments finish within the grace period or end ``interrupted``.
    """
    settings = runtime.settings
    served = parse_pools(settings.worker_pools if pools is None else pools)
    raise_open_file_limit()
    if served:
        logger.info("worker serves pools %s besides unpooled jobs", ", ".join(served))
    app = create_job_app(runtime.db.url, TASK_SETS)
    heartbeats = DeploymentHeartbeats(
        runtime.db, interval=settings.worker_heartbeat_seconds, drain=drain
    )
    beating = asyncio.create_task(heartbeats.run(), name="deployment-heartbeats")
    try:
        await run_job_worker(
            app,
            concurrency=concurrency,
            name=name or worker_name(),
            context={"runtime": runtime, "heartbeats": heartbeats, "pools": frozenset(served)},
            poll_interval=settings.worker_poll_interval_seconds,
            wait=wait,
            shutdown_timeout=settings.worker_shutdown_grace_seconds
            + runtime.executor.kill_grace
            + SHUTDOWN_MARGIN_SECONDS,
            database_url=runtime.db.url,
            pools=served,
            # A fetch under way may bring more due runs: their claims come before heavy work.
            fetching=heartbeats.intake.claiming,
        )
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def database_answers(runtime: Runtime) -> bool:
    try:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def supervise_worker(
    *,
    runtime: Runtime,
    concurrency: int,
    name: str | None = None,
    give_up_after: float | None,
    drain: Drain | None = None,
) -> None:
    """Keep a worker running: restart it with backoff whenever its job engine stops.

    procrastinate stops its worker (and returns as if asked to) when one of its side tasks loses
    the database, so any end that was not a cancellation is a failure here. After failing for
    ``give_up_after`` seconds in a row this raises :class:`WorkerGaveUp`; with ``None`` it never
    gives up (the worker inside ``serve``, which the HTTP side keeps alive).
    """
    clock = runtime.clock
    delay = FIRST_RESTART_DELAY
    max_delay = runtime.settings.worker_restart_max_backoff_seconds
    failing_since: float | None = None
    while drain is None or not drain.draining:
        started = clock.monotonic()
        # Checked first: procrastinate's pool would wait for an absent database without end.
        if await database_answers(runtime):
            try:
                await run_worker(runtime=runtime, concurrency=concurrency, name=name, drain=drain)
                reason = "its job engine stopped (the database connection was lost)"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "the database does not answer"
        now = clock.monotonic()
        if now - started >= HEALTHY_RUN_SECONDS:
            failing_since, delay = None, FIRST_RESTART_DELAY
        failing_since = failing_since if failing_since is not None else started
        if give_up_after is not None and now - failing_since >= give_up_after:
            raise WorkerGaveUp(
                f"the worker kept failing for {now - failing_since:.0f} s; last: {reason}"
            )
        logger.warning("worker stopped: %s; restarting in %.1f s", reason, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


async def stop_worker(task: asyncio.Task[None], drain: Drain, *, grace: float) -> None:
    """Shut a running worker down: drain for ``grace`` seconds, then stop it and wait."""
    drain.begin(grace)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
