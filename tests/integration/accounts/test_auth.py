"""Sign-up, log-in, log-out, token expiry and brute-force protection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from shipyard.accounts.models import ApiToken
from shipyard.db import Database
from tests.support.api import Account, signup, unique_email


async def test_signup_creates_tenant_and_admin_profile(client: httpx.AsyncClient) -> None:
    account = await signup(client, tenant_name="Initech")
    me = await client.get("/api/v1/me", headers=account.headers)
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == account.email
    assert body["role"] == "admin"
    assert body["tenant_name"] == "Initech"
    tenant = await client.get("/api/v1/tenant", headers=account.headers)
    assert tenant.json()["name"] == "Initech"


async def test_signup_with_a_taken_email_answers_alike_and_creates_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    fresh = await client.post(
        "/api/v1/auth/signup",
        json={"email": unique_email(), "password": "whatever long", "tenant_name": "Fresh"},
    )
    taken = await client.post(
        "/api/v1/auth/signup",
        json={"email": admin.email.upper(), "password": "whatever long", "tenant_name": "Again"},
    )
    assert fresh.status_code == taken.status_code == 201
    assert fresh.json().keys() == taken.json().keys()
    assert fresh.json()["user"].keys() == taken.json()["user"].keys()
    # Nothing was created: the token opens nothing and the owner's password is unchanged.
    decoy = {"Authorization": f"Bearer {taken.json()['access_token']}"}
    assert (await client.get("/api/v1/me", headers=decoy)).status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert login.status_code == 200
    assert login.json()["user"]["tenant_id"] == admin.tenant_id


async def test_login_returns_working_token_and_logout_revokes_it(
    client: httpx.AsyncClient, admin: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    after = await client.get("/api/v1/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "token_revoked"
    # The sign-up session is a different token and still works.
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200


async def test_wrong_password_is_401_without_saying_which_part(
    client: httpx.AsyncClient, admin: Account
) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": unique_email(), "password": "not the password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_expired_token_is_refused(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    async with db.session(system=True) as session:
        await session.execute(
            update(ApiToken)
            .where(ApiToken.profile_id == admin.user_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await client.get("/api/v1/me", headers=admin.headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


async def test_requests_without_or_with_garbage_token_are_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/me")).json()["error"]["code"] == "missing_token"
    garbage = await client.get("/api/v1/me", headers={"Authorization": "Bearer shy_nope"})
    assert garbage.status_code == 401
    assert garbage.json()["error"]["code"] == "invalid_token"


async def test_personal_token_shown_once_works_and_can_be_revoked(
    client: httpx.AsyncClient, admin: Account
) -> None:
    created = await client.post(
        "/api/v1/auth/tokens", headers=admin.headers, json={"name": "ci", "expires_in_days": 30}
    )
    assert created.status_code == 201
    token = created.json()["token"]
    listed = await client.get("/api/v1/auth/tokens", headers=admin.headers)
    assert [t["name"] for t in listed.json()] == ["ci"]
    assert "token" not in listed.json()[0]
    assert token not in listed.text
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    revoked = await client.delete(
        f"/api/v1/auth/tokens/{created.json()['id']}", headers=admin.headers
    )
    assert revoked.status_code == 204
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_tokens_are_stored_hashed(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    from sqlalchemy import text

    async with db.session(system=True) as session:
        hashes = (await session.execute(text("SELECT token_hash FROM api_tokens"))).scalars().all()
    assert hashes
    assert admin.token not in hashes
    assert all(len(value) == 64 for value in hashes)


async def test_login_throttled_per_address_across_accounts(client: httpx.AsyncClient) -> None:
    for _ in range(20):
        response = await client.post(
            "/api/v1/auth/login", json={"email": unique_email(), "password": "bad password"}
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": unique_email(), "password": "bad password"}
    )
    assert blocked.status_code == 429
    assert "address" in blocked.json()["error"]["message"]


async def test_successful_login_clears_account_failures(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for _ in range(4):
        await client.post(
            "/api/v1/auth/login", json={"email": admin.email, "password": "bad password"}
        )
    ok = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert ok.status_code == 200
    for _ in range(4):
        again = await client.post(
            "/api/v1/auth/login", json={"email": admin.email, "password": "bad password"}
        )
        assert again.status_code == 401


async def test_password_change_requires_current_password(
    client: httpx.AsyncClient, admin: Account
) -> None:
    bad = await client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={"current_password": "nope", "new_password": "brand new password"},
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["errors"][0]["field"] == "current_password"
    good = await client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={"current_password": admin.password, "new_password": "brand new password"},
    )
    assert good.status_code == 200
    login = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": "brand new password"}
    )
    assert login.status_code == 200
