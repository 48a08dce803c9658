"""Long-running processes: the HTTP server (with an optional in-process worker) and workers.

Each process builds one :class:`~shipyard.runtime.Runtime` and hands it to everything it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator

import uvicorn

from shipyard.api import create_app, create_metrics_app
from shipyard.config import Settings
from shipyard.deployments.heartbeats import Drain
from shipyard.git.clone import private_directory
from shipyard.logs import access_log_enabled, uvicorn_log_config
from shipyard.runtime import Runtime, open_runtime
from shipyard.worker import WorkerGaveUp, stop_worker, supervise_worker

logger = logging.getLogger(__name__)

WORKER_POOL_SIZE = 20
# A worker's runs wait for a pooled connection rather than fail: when hundreds of runs start
# at once (a thousand due in one second) the first seconds of their reads and log writes queue
# on the pool, and 30 s (SQLAlchemy's default) failed runs that a longer wait carries through.
WORKER_POOL_TIMEOUT = 300.0


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stop signal is not raised again once it has stopped.

    uvicorn re-raises SIGTERM after a graceful stop, which kills the process on the spot: the
    in-process worker could not drain and the embedded PostgreSQL would be left running.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)


class _NoSignalsServer(uvicorn.Server):
    """A side server (a worker's metrics): the worker owns the signals, not this one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_forever(
    *,
    settings: Settings,
    database_url: str,
    system_database_url: str | None = None,
    host: str,
    port: int,
    with_worker: bool,
    concurrency: int,
) -> None:
    # Made (or tightened to) owner-only before any request or job writes into it.
    private_directory(settings.clone_cache_dir)
    async with open_runtime(
        settings,
        database_url=database_url,
        system_database_url=system_database_url,
        verify_row_level_security=True,
    ) as runtime:
        app = create_app(runtime=runtime)
        server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=settings.log_level.lower(),
                # No handlers of uvicorn's own: its lines go to the process's one format.
                log_config=uvicorn_log_config(),
                # Paths and query strings of every request: only when debugging (shipyard.logs).
                access_log=access_log_enabled(settings.log_level),
                lifespan="on",
                # X-Forwarded-For is read by deps.client_ip, from SHIPYARD_TRUSTED_PROXIES only
                # (uvicorn would otherwise believe it from loopback).
                proxy_headers=False,
            )
        )
        worker_task = None
        drain = Drain()
        if with_worker:
            # Supervised: restarted whenever the database goes away, never given up on, since
            # this process keeps serving (and /readyz says when no worker is alive).
            worker_task = asyncio.create_task(
                supervise_worker(
                    runtime=runtime, concurrency=concurrency, give_up_after=None, drain=drain
                ),
                name="worker",
            )
        try:
            await server.serve()
        finally:
            if worker_task is not None:
                # uvicorn has handled SIGTERM/SIGINT by now: the worker drains its deployments
                # for the grace period (another signal ends the grace at once).
                with _signals_expire(drain):
                    await stop_worker(
                        worker_task, drain, grace=settings.worker_shutdown_grace_seconds
                    )


async def work_forever(
    *,
    settings: Settings,
    database_url: str,
    system_database_url: str | None = None,
    concurrency: int,
    name: str | None,
) -> None:
    private_directory(settings.clone_cache_dir)
    # Jobs hold a connection only for short transactions, so a small pool serves many jobs;
    # opening it up front keeps connection start-up out of the first jobs' latency.
    async with (
        open_runtime(
            settings,
            database_url=database_url,
            system_database_url=system_database_url,
            verify_row_level_security=True,
            pool_size=WORKER_POOL_SIZE,
            pool_timeout=WORKER_POOL_TIMEOUT,
            warm_connections=WORKER_POOL_SIZE,
        ) as runtime,
        worker_metrics(runtime, port=settings.worker_metrics_port),
    ):
        loop = asyncio.get_running_loop()
        drain = Drain()
        task = asyncio.create_task(
            supervise_worker(
                runtime=runtime,
                concurrency=concurrency,
                name=name,
                give_up_after=settings.worker_give_up_after_seconds,
                drain=drain,
            ),
            name="worker",
        )
        stopping: list[asyncio.Task[None]] = []

        def on_signal() -> None:
            # First signal: stop taking jobs and drain; a second one ends the grace at once.
            if stopping:
                drain.expire()
                return
            stopping.append(
                asyncio.create_task(
                    stop_worker(task, drain, grace=settings.worker_shutdown_grace_seconds)
                )
            )

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal)
        try:
            await task
        except asyncio.CancelledError:
            if stopping:
                await stopping[0]
            logger.info("worker stopped")
        except WorkerGaveUp as exc:
            # A worker that cannot go on must say so to whatever runs it (systemd, a container).
            raise RuntimeError(f"worker stopped: {exc}") from exc


@contextlib.asynccontextmanager
async def worker_metrics(runtime: Runtime, *, port: int) -> AsyncIterator[int | None]:
    """Serve ``runtime``'s ``/metrics`` on ``SHIPYARD_METRICS_HOST``:``port`` (0: not at all)
    for the block; yields the port listened on (None when off)."""
    if not port:
        yield None
        return
    server = _NoSignalsServer(
        uvicorn.Config(
            create_metrics_app(runtime),
            host=runtime.settings.metrics_host,
            port=port,
            log_config=uvicorn_log_config(),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve(), name="worker-metrics")
    while not server.started:
        if task.done():
            await task  # raises why it could not start (the port is taken, ...)
            raise RuntimeError(f"the metrics server on port {port} did not start")
        await asyncio.sleep(0.05)
    logger.info("worker metrics on http://%s:%d/metrics", runtime.settings.metrics_host, port)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def _signals_expire(drain: Drain) -> Iterator[None]:
    """While the in-process worker drains, SIGTERM/SIGINT end its grace period at once."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, drain.expire)
    try:
        yield
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
