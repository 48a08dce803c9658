"""Long-running processes: the HTTP server (with an optional in-process worker) and workers.

Each process builds one :class:`~shipyard.runtime.Runtime` and hands it to everything it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from types import FrameType

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
    listen_fd: int | None = None,
) -> None:
    """Serve until stopped; ``listen_fd``: a listening socket inherited from ``serve_processes``."""
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
        sockets = [socket.socket(fileno=listen_fd)] if listen_fd is not None else None
        try:
            await server.serve(sockets=sockets)
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


# A child that dies this soon after its start is not restarted (a configuration error would
# otherwise loop); later deaths are restarted, as a process manager would.
CHILD_MIN_LIFETIME_SECONDS = 10.0


def serve_processes(
    *,
    database_url: str,
    app_database_url: str | None,
    host: str,
    port: int,
    processes: int,
    with_worker: bool,
    concurrency: int,
) -> int:
    """``serve --workers N``: N ``serve`` processes share one listening socket (bound here).

    Python serves one request at a time per process; N processes use N cores. The first child
    runs the in-process job worker (if any), the others only serve. The parent forwards SIGTERM
    and SIGINT, restarts a child that dies after its start-up, and returns the exit code.
    """
    listener = socket.create_server((host, port), reuse_port=False, backlog=2048)
    listener.set_inheritable(True)
    env = {**os.environ, "SHIPYARD_DATABASE_URL": database_url}
    if app_database_url is not None:
        env["SHIPYARD_DATABASE_APP_URL"] = app_database_url

    def start(index: int) -> tuple[subprocess.Popen[bytes], float]:
        command = [sys.executable, "-m", "shipyard", "serve", "--listen-fd", str(listener.fileno())]
        command += ["--host", host, "--port", str(port)]
        command += ["--worker" if with_worker and index == 0 else "--no-worker"]
        command += ["--concurrency", str(concurrency)]
        child = subprocess.Popen(command, env=env, pass_fds=(listener.fileno(),))
        return child, time.monotonic()

    children = [start(index) for index in range(processes)]
    logger.info("serving on http://%s:%s with %d processes", host, port, processes)
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child, _ in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    exit_code = 0
    try:
        while not stopping:
            time.sleep(0.5)
            for index, (child, started) in enumerate(children):
                code = child.poll()
                if code is None or stopping:
                    continue
                if time.monotonic() - started < CHILD_MIN_LIFETIME_SECONDS:
                    logger.error("serve process %d exited at start-up (%s): stopping", index, code)
                    exit_code = code or 1
                    forward(signal.SIGTERM, None)
                    break
                logger.warning("serve process %d exited (%s): restarting it", index, code)
                children[index] = start(index)
        for child, _ in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=60)
            if child.poll() is None:
                child.kill()
                child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    return exit_code
