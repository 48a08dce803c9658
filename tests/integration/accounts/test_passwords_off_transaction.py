"""argon2 runs with no database connection held: log-ins never starve the pool.

A ``Passwords`` double records how many pooled connections are checked out each time a
password is hashed or checked, and can hold log-ins inside ``verify`` until told to go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from shipyard.accounts.passwords import Passwords
from shipyard.api import create_app
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import Runtime, build_runtime, close_runtime
from tests.support.api import Account, signup, unique_email
from tests.support.browser_http import browser_client, csrf_token


class WatchedPasswords(Passwords):
    """Real hashing, plus: the pool's checked-out count at every call, and a gate on verify."""

    def __init__(self, db: Database) -> None:
        super().__init__(memory_kib=8192)
        self.db = db
        self.checked_out: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0

    def _note(self) -> None:
        self.checked_out.append(self.db.engine.pool.checkedout())  # type: ignore[attr-defined]

    async def hash(self, password: str) -> str:
        self._note()
        return await super().hash(password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self._note()
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        return await super().verify(password_hash, password)


@pytest.fixture
async def small_db(database_url: str, db: Database) -> AsyncIterator[Database]:
    """The test database behind a pool of one connection (plus one overflow)."""
    database = Database(database_url, keyring=db.keyring, pool_size=1)
    yield database
    await database.dispose()


@pytest.fixture
async def watched(small_db: Database, settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings, db=small_db)
    runtime.passwords = WatchedPasswords(small_db)
    yield runtime
    await close_runtime(runtime)


@pytest.fixture
async def small_client(watched: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime=watched))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def passwords_of(runtime: Runtime) -> WatchedPasswords:
    assert isinstance(runtime.passwords, WatchedPasswords)
    return runtime.passwords


async def test_every_hash_and_check_runs_with_no_connection_checked_out(
    small_client: httpx.AsyncClient, watched: Runtime
) -> None:
    passwords = passwords_of(watched)
    admin = await signup(small_client)
    login = {"email": admin.email, "password": admin.password}
    assert (await small_client.post("/api/v1/auth/login", json=login)).status_code == 200
    wrong = {"email": admin.email, "password": "not the password"}
    assert (await small_client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    nobody = {"email": unique_email(), "password": "not the password"}
    assert (await small_client.post("/api/v1/auth/login", json=nobody)).status_code == 401
    member = {"email": unique_email(), "password": "long enough password", "role": "viewer"}
    added = await small_client.post("/api/v1/tenant/members", headers=admin.headers, json=member)
    assert added.status_code == 201
    changed = await small_client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={"current_password": admin.password, "new_password": "brand new password"},
    )
    assert changed.status_code == 200
    async with browser_client(small_client, None) as http:
        token = await csrf_token(http, "/login")
        page_login = {"email": admin.email, "password": "brand new password", "csrf_token": token}
        assert (await http.post("/login", data=page_login)).status_code == 303
    async with browser_client(small_client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        form = {"email": unique_email(), "password": "long enough password", "csrf_token": token}
        assert (await http.post("/settings/members", data=form)).status_code == 303
    # sign-up, 3 log-ins, member add, password change (check + hash), page log-in, page add
    assert len(passwords.checked_out) >= 9
    assert set(passwords.checked_out) == {0}


async def test_logins_waiting_on_argon2_leave_the_pool_free(
    small_client: httpx.AsyncClient, watched: Runtime
) -> None:
    passwords = passwords_of(watched)
    admin: Account = await signup(small_client)
    passwords.gate.clear()
    login = {"email": admin.email, "password": admin.password}
    logins = [
        asyncio.create_task(small_client.post("/api/v1/auth/login", json=login)) for _ in range(6)
    ]
    try:
        async with asyncio.timeout(10):
            while passwords.waiting < len(logins):
                await asyncio.sleep(0.01)
        # Six log-ins are inside the password check; the pool has two connections at most.
        assert watched.db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with asyncio.timeout(2):
            me = await small_client.get("/api/v1/me", headers=admin.headers)
        assert me.status_code == 200
    finally:
        passwords.gate.set()
    responses = await asyncio.gather(*logins)
    assert [response.status_code for response in responses] == [200] * len(logins)
