"""Runtimes and workers for tests: the same composition root the processes use."""

from __future__ import annotations

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime
from shipyard.worker import run_worker


async def run_worker_until_idle(
    settings: Settings, db: Database, *, concurrency: int = 2, name: str | None = None
) -> None:
    """Run a worker (with its own runtime, as a worker process has) until no job is left."""
    runtime = build_runtime(settings, db=db)
    try:
        await run_worker(runtime=runtime, concurrency=concurrency, name=name, wait=False)
    finally:
        await close_runtime(runtime)
