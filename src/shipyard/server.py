"""Long-running processes: the HTTP server (with an optional in-process worker) and workers.

Each process builds one :class:`~shipyard.runtime.Runtime` and hands it to everything it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.logs import access_log_enabled
from shipyard.runtime import open_runtime
from shipyard.worker import WorkerGaveUp, supervise_worker

logger = logging.getLogger(__name__)

WORKER_POOL_SIZE = 20


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
    async with open_runtime(
        settings,
        database_url=database_url,
        system_database_url=system_database_url,
        verify_row_level_security=True,
    ) as runtime:
        app = create_app(runtime=runtime)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level=settings.log_level.lower(),
                # Paths and query strings of every request: only when debugging (shipyard.logs).
                access_log=access_log_enabled(settings.log_level),
                lifespan="on",
            )
        )
        worker_task = None
        if with_worker:
            # Supervised: restarted whenever the database goes away, never given up on, since
            # this process keeps serving (and /readyz says when no worker is alive).
            worker_task = asyncio.create_task(
                supervise_worker(runtime=runtime, concurrency=concurrency, give_up_after=None),
                name="worker",
            )
        try:
            await server.serve()
        finally:
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task


async def work_forever(
    *,
    settings: Settings,
    database_url: str,
    system_database_url: str | None = None,
    concurrency: int,
    name: str | None,
) -> None:
    # Jobs hold a connection only for short transactions, so a small pool serves many jobs;
    # opening it up front keeps connection start-up out of the first jobs' latency.
    async with open_runtime(
        settings,
        database_url=database_url,
        system_database_url=system_database_url,
        verify_row_level_security=True,
        pool_size=WORKER_POOL_SIZE,
        warm_connections=WORKER_POOL_SIZE,
    ) as runtime:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(
            supervise_worker(
                runtime=runtime,
                concurrency=concurrency,
                name=name,
                give_up_after=settings.worker_give_up_after_seconds,
            ),
            name="worker",
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logger.info("worker stopped")
        except WorkerGaveUp as exc:
            # A worker that cannot go on must say so to whatever runs it (systemd, a container).
            raise RuntimeError(f"worker stopped: {exc}") from exc
