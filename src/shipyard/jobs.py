"""The one door to procrastinate: task declarations, transactional enqueueing, named SQL, workers.

No other module imports procrastinate or reads its tables. Domains declare their tasks on a
:class:`TaskSet` (plain data, no procrastinate object), enqueue with :func:`enqueue` inside their
own transaction, and use the named statements below for what procrastinate's Python API cannot do
inside a SQLAlchemy transaction (moving a waiting job, finding the job that holds a queueing
lock). A fresh procrastinate ``App`` is built from the task sets for each worker, so several apps
in one process (tests, benchmarks) never share task objects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from procrastinate.connector import BaseConnector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.db import to_libpq_url
from shipyard.logs import log_context

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "default"
FINISHED_JOB_RETENTION_HOURS = 72


@dataclass(frozen=True)
class JobRun:
    """What a running task knows: the worker's runtime, its own job id and the worker's name."""

    runtime: Runtime
    job_id: int
    worker_name: str
    # Worker-wide objects beyond the runtime (the deployment heartbeats of this worker).
    extras: Mapping[str, Any] = field(default_factory=dict)


TaskFunction = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: TaskFunction
    queueing_lock: str | None = None
    # Six-field cron (seconds last, procrastinate's form) for tasks deferred periodically; such a
    # task receives ``timestamp``, the fire time in epoch seconds.
    periodic: str | None = None
    # Safe to run again when the worker that took it died (``kill -9``, a lost machine): its job
    # is then made waiting again by :func:`retry_stalled_jobs`. Only tasks that check their own
    # state first (a deployment's claim, a sync) say so.
    retry_when_stalled: bool = False


class TaskSet:
    """One domain's tasks, named ``namespace:name``; registered on each worker's app."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.specs: list[TaskSpec] = []

    def task(
        self,
        name: str,
        *,
        queueing_lock: str | None = None,
        periodic: str | None = None,
        retry_when_stalled: bool = False,
    ) -> Callable[[TaskFunction], TaskFunction]:
        """Declare ``func(job: JobRun, **arguments)`` as the task ``namespace:name``."""

        def declare(func: TaskFunction) -> TaskFunction:
            self.specs.append(
                TaskSpec(
                    name=f"{self.namespace}:{name}",
                    func=func,
                    queueing_lock=queueing_lock,
                    periodic=periodic,
                    retry_when_stalled=retry_when_stalled,
                )
            )
            return func

        return declare


maintenance = TaskSet("maintenance")


@maintenance.task("prune_finished_jobs", queueing_lock="prune_finished_jobs", periodic="17 * * * *")
async def prune_finished_jobs(job: JobRun, timestamp: int) -> None:
    """Delete finished job rows (periodic sweeps add many) after a few days."""
    async with job.runtime.db.session(system=True) as session:
        await session.execute(
            text(
                "DELETE FROM procrastinate_jobs WHERE status IN "
                "('succeeded', 'failed', 'cancelled', 'aborted') AND id IN ("
                " SELECT job_id FROM procrastinate_events GROUP BY job_id"
                " HAVING max(at) < now() - make_interval(hours => :hours))"
            ),
            {"hours": FINISHED_JOB_RETENTION_HOURS},
        )


def _adapter(spec: TaskSpec) -> Callable[..., Awaitable[Any]]:
    """procrastinate calls this with its context; our task gets a :class:`JobRun`."""

    @functools.wraps(spec.func)
    async def run(context: procrastinate.JobContext, **arguments: Any) -> Any:
        extras = context.additional_context or {}
        job = context.job
        assert job.id is not None
        # Every line the task writes says which job it came from (shipyard.logs).
        with log_context(job_id=job.id):
            return await spec.func(
                JobRun(
                    runtime=extras["runtime"],
                    job_id=job.id,
                    worker_name=context.worker_name or "",
                    extras=extras,
                ),
                **arguments,
            )

    return run


# A worker that has not beaten for this long is dead: procrastinate's workers beat every 10 s
# and prune one another after 30 s, which also clears the worker of the jobs it held.
STALLED_WORKER_SECONDS = 60
RETRY_STALLED_TASK = "maintenance:retry_stalled_jobs"


async def retry_stalled_jobs(
    manager: procrastinate.manager.JobManager, *, task_names: Iterable[str], stalled_after: float
) -> list[int]:
    """Make waiting again the jobs of ``task_names`` that a dead worker held; their ids.

    A worker killed outright (``kill -9``, its machine gone) leaves the jobs it had taken, and
    those it had fetched and not yet started, ``doing`` for ever: a deployment's run would stay
    ``pending``. procrastinate's own recipe (its stalled jobs by worker heartbeat, then a retry),
    limited to tasks that are safe to run again.
    """
    retried = []
    for name in sorted(set(task_names)):
        for job in await manager.get_stalled_jobs(
            task_name=name, seconds_since_heartbeat=stalled_after
        ):
            assert job.id is not None
            try:
                await manager.retry_job_by_id_async(job.id, retry_at=datetime.now(UTC))
            except procrastinate.exceptions.ConnectorException:
                # Taken back meanwhile (another sweep, or its worker's last word): not stalled.
                logger.debug("job %s: no longer stalled", job.id, exc_info=True)
                continue
            logger.warning("job %s (%s): its worker died; waiting again", job.id, name)
            retried.append(job.id)
    return retried


def _retry_stalled_spec(app: procrastinate.App, task_sets: Iterable[TaskSet]) -> TaskSpec:
    names = frozenset(
        spec.name for task_set in task_sets for spec in task_set.specs if spec.retry_when_stalled
    )

    async def retry_stalled(job: JobRun, timestamp: int) -> None:
        # The app's manager at the time of the call (the worker installs its prefetching one).
        await retry_stalled_jobs(
            app.job_manager, task_names=names, stalled_after=STALLED_WORKER_SECONDS
        )

    return TaskSpec(
        name=RETRY_STALLED_TASK,
        func=retry_stalled,
        queueing_lock=RETRY_STALLED_TASK,
        periodic="* * * * * */15",
    )


def create_job_app(database_url: str, task_sets: Iterable[TaskSet]) -> procrastinate.App:
    """A procrastinate app with every task of ``task_sets`` registered on it."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=to_libpq_url(database_url))
    )
    task_sets = list(task_sets)
    specs = [spec for task_set in (*task_sets, maintenance) for spec in task_set.specs]
    specs.append(_retry_stalled_spec(app, task_sets))
    for spec in specs:
        task = app.task(name=spec.name, pass_context=True, queueing_lock=spec.queueing_lock)(
            _adapter(spec)
        )
        if spec.periodic is not None:
            app.periodic(cron=spec.periodic, periodic_id=spec.name)(task)
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


async def enqueue_many(
    session: AsyncSession,
    *,
    task: str,
    jobs: Sequence[tuple[dict[str, Any], datetime | None]],
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
) -> list[int]:
    """Defer many ``task`` jobs ((args, scheduled_at) each) in one statement, in the session's
    transaction; their ids (match them to their rows by their args, not by position)."""
    if not jobs:
        return []
    result = await session.execute(
        text(
            "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY("
            "SELECT ROW(:queue, :task, :priority, NULL, NULL, CAST(a AS jsonb), s)"
            "::procrastinate_job_to_defer_v1 "
            "FROM unnest(CAST(:args AS text[]), CAST(:scheduled AS timestamptz[])) "
            "WITH ORDINALITY AS t(a, s, n) ORDER BY n)))"
        ),
        {
            "queue": queue,
            "task": task,
            "priority": priority,
            "args": [json.dumps(args) for args, _ in jobs],
            "scheduled": [scheduled_at for _, scheduled_at in jobs],
        },
    )
    return [int(job_id) for job_id in result.scalars()]


async def cancel_job(session: AsyncSession, job_id: int) -> bool:
    """Cancel a job that has not started; True when it was still waiting."""
    result = await session.execute(
        text("SELECT procrastinate_cancel_job_v1(:job_id, false, false)"), {"job_id": job_id}
    )
    return result.scalar_one_or_none() is not None


# Named statements on procrastinate's tables, for what its API cannot do in our transaction.
RESCHEDULE_WAITING_JOB = text(
    "UPDATE procrastinate_jobs SET scheduled_at = :when "
    "WHERE id = :job_id AND status = 'todo' RETURNING id, queue_name"
)
# What procrastinate's insert trigger sends; here it tells the workers' due-time timers (see
# wake_at_due_times) that a waiting job moved. Delivered when the transaction commits.
NOTIFY_JOB_MOVED = text(
    "SELECT pg_notify('procrastinate_queue_v1#' || CAST(:queue AS text), "
    "json_build_object('type', 'job_inserted', 'job_id', CAST(:job_id AS bigint))::text)"
)
WAITING_JOB_WITH_QUEUEING_LOCK = text(
    "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :lock AND status = 'todo'"
)


LATEST_WORKER_HEARTBEAT = text("SELECT max(last_heartbeat) FROM procrastinate_workers")


async def latest_worker_heartbeat(session: AsyncSession) -> datetime | None:
    """When any worker last said it was alive (procrastinate's own worker heartbeat)."""
    value: datetime | None = await session.scalar(LATEST_WORKER_HEARTBEAT)
    return value


# One short statement for the metrics scrape: jobs due and not started (with the oldest one's
# wait, from its schedule or else its "deferred" event), live workers and the jobs they run.
QUEUE_SNAPSHOT = text(
    """
    WITH due AS (
        SELECT j.id, j.scheduled_at FROM procrastinate_jobs j
        WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
    ), live AS (
        SELECT id FROM procrastinate_workers
        WHERE last_heartbeat > now() - make_interval(secs => :alive_within)
    )
    SELECT
        (SELECT count(*) FROM due) AS due,
        (SELECT coalesce(extract(epoch FROM now() - min(coalesce(
            due.scheduled_at,
            (SELECT min(e.at) FROM procrastinate_events e
             WHERE e.job_id = due.id AND e.type = 'deferred')
        ))), 0) FROM due) AS oldest_due_seconds,
        (SELECT count(*) FROM live) AS workers_alive,
        (SELECT count(*) FROM procrastinate_jobs
         WHERE status = 'doing' AND worker_id IN (SELECT id FROM live)) AS jobs_running
    """
)


@dataclass(frozen=True)
class QueueSnapshot:
    due: int
    oldest_due_seconds: float
    workers_alive: int
    jobs_running: int


async def queue_snapshot(session: AsyncSession, *, alive_within: float) -> QueueSnapshot:
    """The job queue as the metrics show it (see QUEUE_SNAPSHOT)."""
    row = (await session.execute(QUEUE_SNAPSHOT, {"alive_within": alive_within})).one()
    return QueueSnapshot(
        due=int(row.due),
        oldest_due_seconds=float(row.oldest_due_seconds or 0),
        workers_alive=int(row.workers_alive),
        jobs_running=int(row.jobs_running),
    )


async def reschedule_waiting_job(session: AsyncSession, *, job_id: int, when: datetime) -> bool:
    """Move a job that has not started to ``when``; False when it has started (or is gone)."""
    moved = (
        await session.execute(RESCHEDULE_WAITING_JOB, {"when": when, "job_id": job_id})
    ).one_or_none()
    if moved is None:
        return False
    await session.execute(NOTIFY_JOB_MOVED, {"queue": moved.queue_name, "job_id": job_id})
    return True


async def waiting_job_with_queueing_lock(session: AsyncSession, *, lock: str) -> int | None:
    """The id of the waiting job holding ``lock``, if any (a second request can join it)."""
    job_id = await session.scalar(WAITING_JOB_WITH_QUEUEING_LOCK, {"lock": lock})
    return int(job_id) if job_id is not None else None


# Worker pools ------------------------------------------------------------------------------
# A pool's jobs wait on the queue ``pool:<name>``; only workers started with that pool take them.
# A pooled worker says it is alive by holding a shared advisory lock per pool on a connection
# of its own: PostgreSQL drops the lock with the connection, so a dead worker cannot look alive.
POOL_QUEUE_PREFIX = "pool:"
POOL_LOCK_NAMESPACE = 0x5059  # "PY": the first key of every pool's advisory lock


def pool_queue(pool: str) -> str:
    return f"{POOL_QUEUE_PREFIX}{pool}"


def worker_queues(pools: Iterable[str]) -> list[str]:
    """The queues a worker listens to: the default one, plus one per pool it serves."""
    return [DEFAULT_QUEUE, *(pool_queue(pool) for pool in sorted(set(pools)))]


def _pool_lock_key(pool: str) -> int:
    return zlib.crc32(pool_queue(pool).encode()) & 0x7FFFFFFF


@contextlib.asynccontextmanager
async def pool_presence(database_url: str, pools: Iterable[str]) -> AsyncIterator[None]:
    """Hold this worker's presence in ``pools`` (see :func:`pool_workers_alive`) for the block."""
    names = sorted(set(pools))
    if not names:
        yield
        return
    connection = await psycopg.AsyncConnection.connect(to_libpq_url(database_url), autocommit=True)
    try:
        for name in names:
            await connection.execute(
                "SELECT pg_advisory_lock_shared(%s, %s)",
                (POOL_LOCK_NAMESPACE, _pool_lock_key(name)),
            )
        yield
    finally:
        await connection.close()


POOL_WORKERS_ALIVE = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = CAST(:namespace AS oid) AND objid = CAST(:key AS oid) AND objsubid = 2"
)


async def pool_workers_alive(session: AsyncSession, pool: str) -> int:
    """How many running workers serve ``pool`` now."""
    count = await session.scalar(
        POOL_WORKERS_ALIVE, {"namespace": POOL_LOCK_NAMESPACE, "key": _pool_lock_key(pool)}
    )
    return int(count or 0)


JOB_STATES = text(
    "SELECT j.id, j.status, (w.last_heartbeat IS NOT NULL AND"
    " w.last_heartbeat > now() - make_interval(secs => :alive_within)) AS worker_alive"
    " FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id"
    " WHERE j.id = ANY(:ids)"
)


@dataclass(frozen=True)
class JobState:
    """Where a job is: ``waiting``, ``running`` or ``finished``; while running, whether the
    worker running it still sends procrastinate's heartbeat."""

    job_id: int
    phase: str
    worker_alive: bool


async def job_states(
    session: AsyncSession, job_ids: Iterable[int], *, alive_within: float
) -> dict[int, JobState]:
    """The state of each job of ``job_ids`` (a job that is gone counts as finished)."""
    ids = list(job_ids)
    found = {job_id: JobState(job_id, "finished", False) for job_id in ids}
    rows = await session.execute(JOB_STATES, {"ids": ids, "alive_within": alive_within})
    for job_id, status, alive in rows:
        phase = {"todo": "waiting", "doing": "running", "aborting": "running"}.get(
            str(status), "finished"
        )
        found[int(job_id)] = JobState(int(job_id), phase, bool(alive))
    return found


# Fetching several jobs per statement during a burst ------------------------------------------
# procrastinate's worker asks for one job at a time, one statement each, and starts it before
# asking again: with 1,000 runs due in one second, two workers spent as much time fetching as
# running. This manager answers the same calls from a batch fetched by one statement (each row is
# one call of procrastinate's own fetch function, so locks, priorities and queues are its rules).
# The batch doubles while the queue fills it and drops back to one job when it does not, so an
# idle worker's poll still asks for one; and it never exceeds the worker's free slots, so a job
# this worker cannot start at once is never held from another worker.
PREFETCH_MAX = 32

_FETCH_BATCH = """
WITH fetched AS MATERIALIZED (
    SELECT procrastinate_fetch_job_v2(%(queues)s::varchar[], %(worker_id)s) AS job
    FROM generate_series(1, %(count)s)
)
SELECT (job).id, (job).status, (job).task_name, (job).priority, (job).lock,
       (job).queueing_lock, (job).args, (job).scheduled_at, (job).queue_name, (job).attempts,
       (job).worker_id
FROM fetched WHERE (job).id IS NOT NULL
"""

# A fetched job the worker did not start (it stopped in between): waiting again, for any worker.
_HAND_BACK = """
WITH back AS (
    UPDATE procrastinate_jobs SET status = 'todo', worker_id = NULL
    WHERE id = ANY(%(ids)s) AND status = 'doing'
    RETURNING queue_name
)
SELECT pg_notify(
    'procrastinate_queue_v1#' || queue_name,
    json_build_object('type', 'job_inserted', 'job_id', NULL)::text
)
FROM (SELECT DISTINCT queue_name FROM back) AS queues
"""


class PrefetchingJobManager(procrastinate.manager.JobManager):
    """procrastinate's job manager, fetching up to :data:`PREFETCH_MAX` jobs per statement."""

    def __init__(
        self,
        connector: BaseConnector,
        *,
        concurrency: int,
        fetching: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        super().__init__(connector)
        self.concurrency = concurrency
        # Entered around each fetch statement: the worker's tasks can tell that more jobs may
        # be on their way (a deployment's heavy work waits for the claims of a burst).
        self.fetching = fetching or contextlib.nullcontext
        self.fetched: collections.deque[procrastinate.jobs.Job] = collections.deque()
        self.batch = 1
        # Jobs handed to the worker and not yet finished, which hold its slots.
        self.started = 0

    async def fetch_job(
        self, queues: Iterable[str] | None, worker_id: int
    ) -> procrastinate.jobs.Job | None:
        if not self.fetched:
            # The worker calls this holding one free slot; the others free now bound the batch.
            count = max(1, min(self.batch, PREFETCH_MAX, self.concurrency - self.started))
            with self.fetching():
                rows = await self.connector.execute_query_all_async(
                    query=_FETCH_BATCH, queues=queues, worker_id=worker_id, count=count
                )
            self.fetched.extend(procrastinate.jobs.Job.from_row(row) for row in rows)
            self.batch = min(PREFETCH_MAX, count * 2) if len(rows) == count else 1
        if not self.fetched:
            return None
        self.started += 1
        return self.fetched.popleft()

    async def finish_job(
        self, job: procrastinate.jobs.Job, status: procrastinate.jobs.Status, delete_job: bool
    ) -> None:
        self.started -= 1
        await super().finish_job(job, status, delete_job)

    async def retry_job(
        self,
        job: procrastinate.jobs.Job,
        retry_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        self.started -= 1
        await super().retry_job(job, retry_at, priority, queue, lock)

    async def hand_back(self) -> int:
        """Make the fetched jobs the worker did not start waiting again; how many there were."""
        ids = [job.id for job in self.fetched]
        self.fetched.clear()
        if ids:
            await self.connector.execute_query_all_async(query=_HAND_BACK, ids=ids)
            logger.info("handed %d fetched job(s) back to the queue", len(ids))
        return len(ids)


def worker_name() -> str:
    return f"{socket.gethostname()}-{id(object()):x}"


async def run_job_worker(
    app: procrastinate.App,
    *,
    concurrency: int,
    name: str,
    context: Mapping[str, Any],
    poll_interval: float,
    wait: bool = True,
    shutdown_timeout: float,
    database_url: str,
    pools: Iterable[str] = (),
    fetching: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
) -> None:
    """Run ``app``'s worker on the default queue and the queues of ``pools`` until stopped (or,
    with ``wait=False``, until idle); while it runs it is counted alive in each of ``pools``.
    ``fetching`` is entered around each statement that fetches jobs.

    Cancelling this stops fetching jobs and waits for the running ones, for at most
    ``shutdown_timeout`` seconds, then cancels what is left.
    """
    pools = list(pools)
    queues = worker_queues(pools)
    manager = PrefetchingJobManager(app.connector, concurrency=concurrency, fetching=fetching)
    app.job_manager = manager
    async with (
        app.open_async(),
        pool_presence(database_url, pools),
        due_time_wakeups(database_url, queues),
        _handing_back(manager),
    ):
        await app.run_worker_async(
            concurrency=concurrency,
            name=name,
            queues=queues,
            wait=wait,
            additional_context=dict(context),
            install_signal_handlers=False,
            # New jobs wake the worker by LISTEN/NOTIFY, and so do jobs falling due (the
            # due-time timer); the poll is the fallback should a notification be lost.
            fetch_job_polling_interval=poll_interval,
            shutdown_graceful_timeout=shutdown_timeout,
        )


@contextlib.asynccontextmanager
async def _handing_back(manager: PrefetchingJobManager) -> AsyncIterator[None]:
    """Hand the worker's fetched, unstarted jobs back when it stops, however it stops."""
    try:
        yield
    finally:
        try:
            await asyncio.shield(manager.hand_back())
        except Exception as exc:
            # The database is gone: the jobs stay 'doing', as a job this worker was running
            # would, until retry_stalled_jobs makes them wait again (tasks safe to rerun; a pool
            # part is not, see docs/decisions.md "Jobs a dead worker held").
            logger.warning("could not hand fetched jobs back (%s)", type(exc).__name__)


# Waking workers when scheduled jobs fall due -------------------------------------------------
# procrastinate wakes its workers by NOTIFY when a job is inserted, but a job scheduled for later
# is found only by the worker's next poll after it falls due. Each worker keeps a timer set to
# the earliest due time among the waiting jobs of its queues and, when it fires, sends the
# NOTIFY procrastinate's insert trigger sends: every worker listening on that queue fetches at
# once. The timer is re-read whenever a job is inserted or moved (the same notifications), so a
# run due in a second starts within milliseconds of its time without a tiny poll interval.
WAKE_REFRESH_SECONDS = 30.0  # re-read the due times at least this often
WAKE_DEBOUNCE_SECONDS = 0.02  # a burst of inserts is read once
WAKE_RETRY_SECONDS = 5.0


def queue_channel(queue: str) -> str:
    """procrastinate's notification channel of ``queue``."""
    return f"procrastinate_queue_v1#{queue}"


async def _due_waits(
    connection: psycopg.AsyncConnection[Any], queues: list[str]
) -> dict[str, float]:
    cursor = await connection.execute(
        "SELECT queue_name, extract(epoch FROM min(scheduled_at) - clock_timestamp())"
        " FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = ANY(%s)"
        " AND scheduled_at > clock_timestamp() GROUP BY queue_name",
        (queues,),
    )
    return {str(queue): float(wait) for queue, wait in await cursor.fetchall()}


async def _wake_loop(database_url: str, queues: list[str]) -> None:
    from psycopg import sql

    async with await psycopg.AsyncConnection.connect(
        to_libpq_url(database_url), autocommit=True
    ) as connection:
        for queue in queues:
            await connection.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(queue_channel(queue)))
            )
        while True:
            waits = await _due_waits(connection, queues)
            read_at = time.monotonic()
            delay = min([WAKE_REFRESH_SECONDS, *waits.values()])
            heard = False
            async for _ in connection.notifies(timeout=max(delay, 0.0), stop_after=1):
                heard = True
            if heard:
                # More may follow (a batch of inserts): gather them, then re-read once.
                async for _ in connection.notifies(timeout=WAKE_DEBOUNCE_SECONDS):
                    pass
                continue
            elapsed = time.monotonic() - read_at
            due = [queue for queue, wait in waits.items() if wait <= elapsed]
            for queue in due:
                await connection.execute(
                    "SELECT pg_notify(%s, %s)",
                    (queue_channel(queue), json.dumps({"type": "job_inserted", "job_id": None})),
                )
            if due:
                logger.debug("woke workers for jobs due on %s", ", ".join(due))


async def wake_at_due_times(database_url: str, queues: Iterable[str]) -> None:
    """Run the due-time timer of a worker serving ``queues`` until cancelled (see above).

    A lost connection is retried; meanwhile the worker's poll still finds due jobs.
    """
    names = sorted(set(queues))
    while True:
        try:
            await _wake_loop(database_url, names)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning(
                "due-time wake-ups stopped (%s); polling meanwhile, retrying in %.0f s",
                type(exc).__name__,
                WAKE_RETRY_SECONDS,
            )
            await asyncio.sleep(WAKE_RETRY_SECONDS)


@contextlib.asynccontextmanager
async def due_time_wakeups(database_url: str, queues: Iterable[str]) -> AsyncIterator[None]:
    """Keep :func:`wake_at_due_times` running for the block."""
    task = asyncio.create_task(wake_at_due_times(database_url, queues), name="due-time-wakeups")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
