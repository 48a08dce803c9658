"""Long-running processes: the HTTP server (with an optional in-process worker) and workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.crypto import get_keyring
from shipyard.db import Database
from shipyard.jobs import run_worker

logger = logging.getLogger(__name__)

WORKER_POOL_SIZE = 20


async def serve_forever(
    *,
    settings: Settings,
    database_url: str,
    host: str,
    port: int,
    with_worker: bool,
    concurrency: int,
) -> None:
    get_keyring(settings)  # creates the key file on first start, before any secret is stored
    db = Database(database_url)
    app = create_app(settings, db)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level=settings.log_level.lower(), lifespan="on"
        )
    )
    worker_task = None
    if with_worker:
        worker_task = asyncio.create_task(
            run_worker(settings=settings, db=db, concurrency=concurrency)
        )
    try:
        await server.serve()
    finally:
        if worker_task is not None:
            worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
        await db.dispose()


async def work_forever(
    *, settings: Settings, database_url: str, concurrency: int, name: str | None
) -> None:
    # Jobs hold a connection only for short transactions, so a small pool serves many jobs;
    # opening it up front keeps connection start-up out of the first jobs' latency.
    db = Database(database_url, pool_size=WORKER_POOL_SIZE)
    await db.warm_up(WORKER_POOL_SIZE)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(
        run_worker(settings=settings, db=db, concurrency=concurrency, name=name)
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        logger.info("worker stopped")
    finally:
        await db.dispose()
