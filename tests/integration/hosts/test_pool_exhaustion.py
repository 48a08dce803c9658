"""Slow connection tests hold no database connection: the API stays responsive meanwhile.

A host that accepts TCP and never says a word of SSH keeps each test waiting for the whole
connect timeout. Thirty of them at once, twice the database pool (10 + 5 overflow), must leave
``GET /api/v1/hosts`` and ``GET /healthz`` answering within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

import httpx
import pytest

from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.crypto import load_keyring
from shipyard.db import Database
from shipyard.runtime import DEFAULT_POOL_SIZE, build_runtime, close_runtime
from tests.support.api import Account, signup
from tests.support.sshd import LOOPBACK

CONCURRENT_TESTS = 30
# Long enough for all thirty probes to be connected before the reads below, short enough to
# keep the test quick. The real default (10 s) would only make the test slower.
CONNECT_TIMEOUT = 5.0
ANSWER_WITHIN = 1.0


class SilentListener:
    """A loopback TCP server that accepts connections and never sends an SSH banner."""

    def __init__(self) -> None:
        self.open: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._hold, LOOPBACK, 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open.add(writer)
        try:
            await reader.read()  # until the client gives up and closes
        finally:
            self.open.discard(writer)
            writer.close()

    async def stop(self) -> None:
        for writer in list(self.open):
            writer.close()
        if self.server is not None:
            self.server.close()
            with suppress(Exception):
                await self.server.wait_closed()


@pytest.fixture
async def silent_port() -> AsyncIterator[tuple[SilentListener, int]]:
    listener = SilentListener()
    port = await listener.start()
    yield listener, port
    await listener.stop()


@pytest.fixture
async def pooled_client(database_url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The application on the pool a server process really has (10 + 5 overflow)."""
    database = Database(database_url, keyring=load_keyring(settings), pool_size=DEFAULT_POOL_SIZE)
    # Every test may connect at once: the point is what the database pool does, not the
    # executor's per-host cap (which would only queue the probes and lengthen the test).
    tuned = settings.model_copy(
        update={
            "ssh_connect_timeout": CONNECT_TIMEOUT,
            "ssh_max_connections_per_host": CONCURRENT_TESTS,
        }
    )
    runtime = build_runtime(tuned, db=database)
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await close_runtime(runtime)
        await database.dispose()


async def _timed_get(client: httpx.AsyncClient, path: str, account: Account) -> float:
    started = time.monotonic()
    response = await asyncio.wait_for(client.get(path, headers=account.headers), timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    return elapsed


async def test_thirty_silent_host_tests_leave_the_api_answering(
    pooled_client: httpx.AsyncClient, silent_port: tuple[SilentListener, int]
) -> None:
    listener, port = silent_port
    admin = await signup(pooled_client, tenant_name="Pool")
    created = await pooled_client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": "silent", "ip": LOOPBACK, "port": port, "user": "deploy", "password": "pw"},
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/hosts/{created.json()['id']}/test"

    started = time.monotonic()
    tests: list[asyncio.Task[httpx.Response]] = [
        asyncio.create_task(pooled_client.post(url, headers=admin.headers))
        for _ in range(CONCURRENT_TESTS)
    ]
    try:
        # Every test is waiting on the silent host (none is queued behind the pool).
        while listener.accepted < CONCURRENT_TESTS:
            assert time.monotonic() - started < CONNECT_TIMEOUT - 2 * ANSWER_WITHIN, (
                f"only {listener.accepted} of {CONCURRENT_TESTS} tests reached the host"
            )
            await asyncio.sleep(0.05)
        # The best of three: a read queued behind the pool waits every time (until a test ends,
        # seconds away), while a loaded machine's scheduling hiccup delays one read, not three.
        timings = {
            path: min([await _timed_get(pooled_client, path, admin) for _ in range(3)])
            for path in ("/api/v1/hosts", "/healthz")
        }
        assert not any(task.done() for task in tests), "the reads must overlap the tests"
        assert all(elapsed < ANSWER_WITHIN for elapsed in timings.values()), timings
        responses = await asyncio.gather(*tests)
    finally:
        for task in tests:
            task.cancel()
    bodies: list[dict[str, Any]] = [response.json() for response in responses]
    assert [response.status_code for response in responses] == [200] * CONCURRENT_TESTS
    assert {(body["status"], body["error_code"]) for body in bodies} == {
        ("offline", "connection_failed")
    }
