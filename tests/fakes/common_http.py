"""Serving the provider fakes: uvicorn on loopback in a thread, and the per-request pipeline."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes.common import FakeUser, Forge, Recorded, bearer, fault_response


class ThreadedApp:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> ThreadedApp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        # uvicorn's loggers are shared with the Shipyard servers of the tests: leave them as
        # they are (no log_config, level or access_log of our own) so Shipyard's lines reach the
        # secret canary; it leaves out this thread's lines by its ``fake-`` name.
        config = uvicorn.Config(
            self.app, log_config=None, log_level=None, lifespan="off", timeout_keep_alive=30
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name=f"fake-{type(self.app).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None


Handler = Callable[[Request, FakeUser | None], Response]
Unauthorized = Callable[[bool], Response]


async def serve(
    forge: Forge,
    request: Request,
    handler: Handler,
    *,
    unauthorized: Unauthorized,
    require_user: bool = True,
    schemes: tuple[str, ...] = ("token", "bearer"),
) -> Response:
    """Record, delay, inject faults, authenticate, answer, and add rate-limit headers."""
    recorded = forge.record(request)
    with forge.lock:
        forge.in_flight += 1
        forge.max_in_flight = max(forge.max_in_flight, forge.in_flight)
    try:
        return await _answer(forge, request, handler, recorded, unauthorized, require_user, schemes)
    finally:
        with forge.lock:
            forge.in_flight -= 1


async def _answer(
    forge: Forge,
    request: Request,
    handler: Handler,
    recorded: Recorded,
    unauthorized: Unauthorized,
    require_user: bool,
    schemes: tuple[str, ...],
) -> Response:
    if forge.latency:
        await asyncio.sleep(forge.latency)
    token = bearer(request, *schemes) or request.headers.get("private-token")
    query = f"?{request.url.query}" if request.url.query else ""
    fault = forge.take_fault(request.url.path + query)
    if fault is not None:
        response = fault_response(fault)
    else:
        user = forge.user_for(token)
        if require_user and user is None:
            response = unauthorized(token is not None)
        else:
            response = handler(request, user)
    if forge.rate_header_prefix:
        for name, value in forge.rate_headers(token).items():
            header = forge.rate_header_prefix + name.removeprefix("x-ratelimit-")
            if header not in response.headers:
                response.headers[header] = value
    recorded.status = response.status_code
    return response


async def read_json_body(request: Request) -> None:
    """Parse a write's JSON body into ``request.state.json`` (handlers are synchronous)."""
    try:
        request.state.json = await request.json()
    except ValueError:
        request.state.json = None
