"""A real Shipyard server on a loopback port and a headless Debian Chromium to drive it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import uvicorn
from playwright.async_api import Browser, BrowserContext, Playwright

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.crypto import load_keyring
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime
from shipyard.web.session import SESSION_COOKIE
from shipyard.worker import run_worker
from tests.support.api import Account, add_member, signup

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 20.0


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )


class LiveServer:
    """Shipyard (and optionally a job worker) served by uvicorn in a thread with its own loop.

    Its own loop keeps the server responsive while a test awaits the browser, and the socket is
    bound before the thread starts, so the port is known and never raced for.
    """

    def __init__(self, settings: Settings, database_url: str, *, with_worker: bool = False) -> None:
        self.database_url = database_url
        self.with_worker = with_worker
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Links the server makes for the outside world (OAuth callbacks) must point at itself.
        self.settings = settings.model_copy(update={"base_url": self.url})
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"shipyard-{self.port}", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"Shipyard did not start within {START_TIMEOUT} s")
        if self._error is not None:
            raise RuntimeError("Shipyard failed to start") from self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread, which re-raises
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        db = Database(self.database_url, keyring=load_keyring(self.settings), pool_size=5)
        self.db = db
        runtime = build_runtime(self.settings, db=db)
        app = create_app(runtime=runtime)
        config = uvicorn.Config(
            app,
            # Into Python logging (no handlers of uvicorn's own), access log included: the
            # secret canary reads it; pytest shows it only for a failing test.
            log_config=None,
            log_level="debug",
            lifespan="on",
            ws="none",
            # Open log streams must not hold the test run hostage at shutdown.
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        self._server = server
        worker: asyncio.Task[None] | None = None
        if self.with_worker:
            worker = asyncio.create_task(
                run_worker(runtime=runtime, concurrency=4, name=f"web-{self.port}")
            )
        serving = asyncio.create_task(server.serve(sockets=[self._socket]))
        for _ in range(int(START_TIMEOUT / 0.02)):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.02)
        self._ready.set()
        try:
            await serving
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await close_runtime(runtime)
            await db.dispose()

    async def call(self, make: Callable[[Database], Coroutine[Any, Any, Any]]) -> Any:
        """Run ``make(db)`` on the server's loop (where its engine lives) and return the result."""
        assert self._loop is not None
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(make(self.db), self._loop)
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=20)
        self._socket.close()


async def api_signup(base_url: str, *, tenant_name: str = "Acme") -> Account:
    """An admin of a new tenant, made through the REST API of the live server (fast set-up)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        return await signup(http, tenant_name=tenant_name)


async def api_add_member(base_url: str, admin: Account, role: str) -> Account:
    async with httpx.AsyncClient(base_url=base_url) as http:
        return await add_member(http, admin, role)


async def use_session(context: BrowserContext, base_url: str, account: Account) -> None:
    """Log ``context`` in as ``account`` by setting the session cookie the log-in page would set."""
    await context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": account.token,
                "url": base_url,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
