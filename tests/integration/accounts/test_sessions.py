"""Log-in delay, trusted proxies, sessions ended by a password change or an admin, the live
log stream after log-out or removal, and expired-session clean-up."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from uuid import UUID

import httpx
from sqlalchemy import func, select, update

from shipyard.accounts.models import ApiToken, LoginFailure
from shipyard.accounts.principal import forwarded_client
from shipyard.accounts.tasks import purge_expired
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.models import Deployment
from shipyard.jobs import JobRun
from shipyard.runtime import Runtime
from tests.integration.accounts.conftest import AppClient, audit_actions
from tests.support.api import Account, add_member, unique_email
from tests.support.browser_http import browser_client, csrf_token
from tests.support.live_server import serve

BAD = {"password": "not the password"}


async def _login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def test_failures_slow_log_in_but_the_right_password_still_works(
    app_client: AppClient, admin: Account
) -> None:
    tuned = {
        "login_delay_free_failures": 1,
        "login_delay_base_seconds": 0.3,
        "login_delay_max_seconds": 0.6,
    }
    async with app_client(**tuned) as http:
        for _ in range(6):
            assert (await _login(http, admin.email, BAD["password"])).status_code == 401
        # Six failures: far more than the old limit of five, and no lock-out.
        started = time.monotonic()
        ok = await _login(http, admin.email, admin.password)
        assert ok.status_code == 200
        assert time.monotonic() - started < 2.0
        # Right after a new failure the next attempt waits the capped delay first.
        await _login(http, admin.email, BAD["password"])
        started = time.monotonic()
        assert (await _login(http, admin.email, BAD["password"])).status_code == 401
        assert time.monotonic() - started >= 0.25


async def test_only_hammering_gets_429_per_address(app_client: AppClient) -> None:
    async with app_client(login_max_failures_per_address=4, login_delay_base_seconds=0.0) as http:
        for _ in range(4):
            assert (await _login(http, unique_email(), "bad password")).status_code == 401
        blocked = await _login(http, unique_email(), "bad password")
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        assert "address" in blocked.json()["error"]["message"]
    # Another address is not affected.
    async with app_client(
        login_max_failures_per_address=4, login_delay_base_seconds=0.0, peer="10.7.7.7"
    ) as http:
        assert (await _login(http, unique_email(), "bad password")).status_code == 401


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    app_client: AppClient, admin: Account, db: Database
) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9"}
    body = {"email": admin.email, "password": admin.password}
    async with app_client(peer="10.1.2.3") as http:
        assert (await http.post("/api/v1/auth/login", json=body, headers=forged)).is_success
    async with app_client(peer="10.1.2.3", trusted_proxies=(ip_network("10.0.0.0/8"),)) as http:
        headers = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.0.0.7"}
        assert (await http.post("/api/v1/auth/login", json=body, headers=headers)).is_success
    rows = await audit_actions(db, "login")
    assert [str(row.ip_address) for row in rows] == ["10.1.2.3", "203.0.113.9"]


def test_forwarded_client_walks_from_the_right() -> None:
    trusted = [ip_network("10.0.0.0/8"), ip_network("::1/128")]
    assert forwarded_client("192.0.2.1", ["203.0.113.9"], trusted=trusted) == "192.0.2.1"
    assert forwarded_client("10.0.0.1", ["1.1.1.1, 203.0.113.9"], trusted=trusted) == "203.0.113.9"
    assert forwarded_client("10.0.0.1", ["garbage, 10.0.0.2"], trusted=trusted) == "10.0.0.2"
    assert forwarded_client("10.0.0.1", [], trusted=trusted) == "10.0.0.1"
    assert forwarded_client("::1", ["2001:db8::5"], trusted=trusted) == "2001:db8::5"
    assert forwarded_client(None, ["203.0.113.9"], trusted=trusted) == "unknown"


async def test_password_change_ends_other_sessions_but_keeps_this_one_and_api_tokens(
    client: httpx.AsyncClient, admin: Account
) -> None:
    other = (await _login(client, admin.email, admin.password)).json()["access_token"]
    personal = await client.post("/api/v1/auth/tokens", headers=admin.headers, json={"name": "ci"})
    personal_headers = {"Authorization": f"Bearer {personal.json()['token']}"}
    changed = await client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={"current_password": admin.password, "new_password": "a brand new password"},
    )
    assert changed.status_code == 200
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200
    gone = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"})
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "token_revoked"
    assert (await client.get("/api/v1/me", headers=personal_headers)).status_code == 200


async def test_admin_revokes_a_members_tokens_by_api_and_page(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    member = await add_member(client, admin, "developer")
    made = []
    for name in ("one", "two"):
        created = await client.post(
            "/api/v1/auth/tokens", headers=member.headers, json={"name": name}
        )
        made.append(created.json())
    listed = await client.get(
        f"/api/v1/tenant/members/{member.user_id}/tokens", headers=admin.headers
    )
    assert sorted(t["name"] for t in listed.json()) == ["one", "two"]
    assert made[0]["token"] not in listed.text
    # Other tenants and non-admins cannot.
    for headers in (other_admin.headers, member.headers):
        refused = await client.delete(
            f"/api/v1/tenant/members/{member.user_id}/tokens/{made[0]['id']}", headers=headers
        )
        assert refused.status_code in (403, 404)
    revoked = await client.delete(
        f"/api/v1/tenant/members/{member.user_id}/tokens/{made[0]['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    one = {"Authorization": f"Bearer {made[0]['token']}"}
    two = {"Authorization": f"Bearer {made[1]['token']}"}
    assert (await client.get("/api/v1/me", headers=one)).status_code == 401
    assert (await client.get("/api/v1/me", headers=two)).status_code == 200
    [row] = await audit_actions(db, "member.token.revoke")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert row.resource_id == UUID(made[0]["id"])
    # The page: the member's tokens, then "revoke all" (log-in sessions included).
    async with browser_client(client, admin) as http:
        page = await http.get(f"/settings/members/{member.user_id}/tokens")
        assert page.status_code == 200 and "two" in page.text
        token = await csrf_token(http, f"/settings/members/{member.user_id}/tokens")
        everything = await http.post(
            f"/settings/members/{member.user_id}/tokens/revoke-all", data={"csrf_token": token}
        )
        assert everything.status_code == 303
        assert "token(s) revoked" in (await http.get(everything.headers["location"])).text
    assert (await client.get("/api/v1/me", headers=two)).status_code == 401
    assert (await client.get("/api/v1/me", headers=member.headers)).status_code == 401
    [all_row] = await audit_actions(db, "member.tokens.revoke")
    assert all_row.details == {"revoked": 2}


async def _stream_until_closed(base_url: str, headers: dict[str, str], deployment_id: str) -> str:
    """Read the deployment's live log until the server ends it; returns what it sent."""
    received = []
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        http.stream(
            "GET", f"/api/v1/deployments/{deployment_id}/logs/stream", headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_text():
            received.append(chunk)
    return "".join(received)


async def test_live_log_stream_stops_after_log_out_and_removal(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    member = await add_member(client, admin, "viewer")
    async with db.session(system=True) as session:
        deployment = Deployment(name="stays pending", tenant_id=UUID(admin.tenant_id))
        session.add(deployment)
        await session.flush()
        deployment_id = str(deployment.id)
    session_of_admin = (await _login(client, admin.email, admin.password)).json()["access_token"]
    admin_headers = {"Authorization": f"Bearer {session_of_admin}"}
    async with serve(db, settings) as base_url:
        admin_stream = asyncio.create_task(
            _stream_until_closed(base_url, admin_headers, deployment_id)
        )
        member_stream = asyncio.create_task(
            _stream_until_closed(base_url, member.headers, deployment_id)
        )
        await asyncio.sleep(0.5)
        assert not admin_stream.done() and not member_stream.done()
        assert (await client.post("/api/v1/auth/logout", headers=admin_headers)).status_code == 204
        removed = await client.delete(
            f"/api/v1/tenant/members/{member.user_id}", headers=admin.headers
        )
        assert removed.status_code == 204
        started = time.monotonic()
        # Both end within the re-check interval (5 s), without the deployment finishing.
        sent = await asyncio.wait_for(asyncio.gather(admin_stream, member_stream), timeout=12)
        assert time.monotonic() - started < 8
        assert all("event: end" not in text for text in sent)


async def test_expired_sessions_are_purged_at_log_in_and_by_the_job(
    client: httpx.AsyncClient, admin: Account, db: Database, runtime: Runtime
) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)

    async def expire_sessions() -> None:
        async with db.session(system=True) as session:
            await session.execute(
                update(ApiToken).where(ApiToken.kind == "session").values(expires_at=past)
            )

    async def count(kind: str) -> int:
        async with db.session(system=True) as session:
            found = await session.scalar(
                select(func.count()).select_from(ApiToken).where(ApiToken.kind == kind)
            )
            return int(found or 0)

    for _ in range(2):
        await _login(client, admin.email, admin.password)
    assert await count("session") == 3
    await expire_sessions()
    # Log-in deletes the user's expired sessions: three go, the new one stays.
    fresh = (await _login(client, admin.email, admin.password)).json()["access_token"]
    assert await count("session") == 1
    personal = await client.post(
        "/api/v1/auth/tokens",
        headers={"Authorization": f"Bearer {fresh}"},
        json={"name": "ci", "expires_in_days": 1},
    )
    assert personal.status_code == 201
    await expire_sessions()
    async with db.session(system=True) as session:
        session.add(LoginFailure(email="x@example.com", ip_address="10.0.0.1", created_at=past))
    await purge_expired(JobRun(runtime=runtime, job_id=1, worker_name="test"), timestamp=0)
    assert await count("session") == 0
    assert await count("personal") == 1
    async with db.session(system=True) as session:
        assert await session.scalar(select(func.count()).select_from(LoginFailure)) == 0
