"""A real HTTP server (uvicorn) for tests that need streaming responses over a socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(db: Database, settings: Settings) -> AsyncIterator[str]:
    """Serve Shipyard on a loopback port in this event loop; yields the base URL."""
    port = free_port()
    runtime = build_runtime(settings, db=db)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime=runtime),
            host="127.0.0.1",
            port=port,
            # Into Python logging (no handlers of uvicorn's own), access log included: the
            # secret canary reads it; pytest shows it only for a failing test.
            log_config=None,
            log_level="debug",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        await close_runtime(runtime)
