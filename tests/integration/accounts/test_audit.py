"""Every audited accounts action writes one audit row, whether the API or a web page asked.

Each action is driven through both front ends (where both offer it) and the row is read back
from ``audit_events``: who did it, from which address, on what, with which details.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import ApiToken, AuditEvent
from shipyard.accounts.tokens import hash_token
from shipyard.db import Database
from tests.support.api import Account, add_member, signup, unique_email
from tests.support.browser_http import browser_client, csrf_token

FrontEnd = Literal["api", "web"]
BOTH: list[FrontEnd] = ["api", "web"]
HTMX = {"HX-Request": "true"}
# httpx's ASGI transport reports this client address; the audit row keeps it.
CLIENT_ADDRESS = "127.0.0.1"


async def audit_rows(db: Database, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.outcome == "success")
            .order_by(AuditEvent.created_at)
        )
        return list(rows.all())


async def only_row(db: Database, action: str) -> AuditEvent:
    rows = await audit_rows(db, action)
    assert len(rows) == 1, [(row.action, row.details) for row in rows]
    row = rows[0]
    assert str(row.ip_address) == CLIENT_ADDRESS
    return row


async def token_id(db: Database, token: str) -> UUID:
    async with db.session(system=True) as session:
        found = await session.scalar(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(token))
        )
    assert found is not None
    return found


async def web_post(
    client: httpx.AsyncClient,
    account: Account | None,
    path: str,
    data: dict[str, str] | None = None,
    *,
    page: str = "/settings/members",
    htmx: bool = False,
) -> httpx.Response:
    """Post a form like a browser on ``page`` would (with its CSRF token)."""
    async with browser_client(client, account) as http:
        token = await csrf_token(http, page)
        if htmx:
            return await http.post(path, data=data, headers={**HTMX, "X-CSRF-Token": token})
        return await http.post(path, data={**(data or {}), "csrf_token": token})


@pytest.mark.parametrize("front", BOTH)
async def test_signup_is_audited(client: httpx.AsyncClient, db: Database, front: FrontEnd) -> None:
    if front == "api":
        account = await signup(client, tenant_name="Initech")
        user_id, tenant_id = UUID(account.user_id), UUID(account.tenant_id)
    else:
        email = unique_email("signup")
        response = await web_post(
            client,
            None,
            "/signup",
            {"email": email, "password": "long enough password", "tenant_name": "Initech"},
            page="/signup",
        )
        assert response.status_code == 303, response.text
        me = await client.get(
            "/api/v1/me",
            headers={"Authorization": f"Bearer {response.cookies['shipyard_session']}"},
        )
        user_id, tenant_id = UUID(me.json()["id"]), UUID(me.json()["tenant_id"])
    row = await only_row(db, "signup")
    assert (row.tenant_id, row.actor_profile_id) == (tenant_id, user_id)
    assert (row.resource_type, row.resource_id) == ("tenant", tenant_id)


@pytest.mark.parametrize("front", BOTH)
async def test_login_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    credentials = {"email": admin.email, "password": admin.password}
    if front == "api":
        response = await client.post("/api/v1/auth/login", json=credentials)
        assert response.status_code == 200
        token = response.json()["access_token"]
    else:
        response = await web_post(client, None, "/login", credentials, page="/login")
        assert response.status_code == 303
        token = response.cookies["shipyard_session"]
    row = await only_row(db, "login")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert row.tenant_id == UUID(admin.tenant_id)
    assert (row.resource_type, row.resource_id) == ("api_token", await token_id(db, token))


async def test_failed_login_is_not_an_audited_login(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": "not the password"}
    )
    assert response.status_code == 401
    assert await audit_rows(db, "login") == []


@pytest.mark.parametrize("front", BOTH)
async def test_logout_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    session_token = await token_id(db, admin.token)
    if front == "api":
        response = await client.post("/api/v1/auth/logout", headers=admin.headers)
        assert response.status_code == 204
    else:
        response = await web_post(client, admin, "/logout", page="/settings")
        assert response.status_code == 303
    row = await only_row(db, "logout")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("api_token", session_token)
    after = await client.get("/api/v1/me", headers=admin.headers)
    assert after.json()["error"]["code"] == "token_revoked"


@pytest.mark.parametrize("front", BOTH)
async def test_member_add_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    email = unique_email("new")
    form = {"email": email, "password": "long enough password", "role": "viewer"}
    if front == "api":
        response = await client.post("/api/v1/tenant/members", headers=admin.headers, json=form)
        assert response.status_code == 201
    else:
        response = await web_post(client, admin, "/settings/members", form)
        assert response.status_code == 303
    members = await client.get("/api/v1/tenant/members", headers=admin.headers)
    member_id = next(UUID(m["id"]) for m in members.json() if m["email"] == email)
    row = await only_row(db, "member.add")
    assert (row.tenant_id, row.actor_profile_id) == (UUID(admin.tenant_id), UUID(admin.user_id))
    assert (row.resource_type, row.resource_id) == ("profile", member_id)
    assert row.details == {"email": email, "role": "viewer"}


@pytest.mark.parametrize("front", BOTH)
async def test_member_role_change_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    viewer = await add_member(client, admin, "viewer")
    if front == "api":
        response = await client.patch(
            f"/api/v1/tenant/members/{viewer.user_id}",
            headers=admin.headers,
            json={"role": "developer"},
        )
        assert response.status_code == 200
    else:
        response = await web_post(
            client,
            admin,
            f"/settings/members/{viewer.user_id}/role",
            {"role": "developer"},
            htmx=True,
        )
        assert response.status_code == 200
    row = await only_row(db, "member.role")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("profile", UUID(viewer.user_id))
    assert row.details == {"role": "developer"}


@pytest.mark.parametrize("front", BOTH)
async def test_refused_role_change_leaves_no_audit_row(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    if front == "api":
        response = await client.patch(
            f"/api/v1/tenant/members/{admin.user_id}",
            headers=admin.headers,
            json={"role": "viewer"},
        )
    else:
        response = await web_post(
            client, admin, f"/settings/members/{admin.user_id}/role", {"role": "viewer"}
        )
    assert response.status_code == 409
    assert await audit_rows(db, "member.role") == []


@pytest.mark.parametrize("front", BOTH)
async def test_member_removal_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    viewer = await add_member(client, admin, "viewer")
    if front == "api":
        response = await client.delete(
            f"/api/v1/tenant/members/{viewer.user_id}", headers=admin.headers
        )
        assert response.status_code == 204
    else:
        response = await web_post(
            client, admin, f"/settings/members/{viewer.user_id}/remove", htmx=True
        )
        assert response.status_code == 200
    row = await only_row(db, "member.remove")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("profile", UUID(viewer.user_id))


async def _create_token(
    client: httpx.AsyncClient, account: Account, front: FrontEnd, name: str
) -> dict[str, Any]:
    if front == "api":
        response = await client.post(
            "/api/v1/auth/tokens", headers=account.headers, json={"name": name}
        )
        assert response.status_code == 201
    else:
        response = await web_post(
            client, account, "/settings/tokens", {"name": name}, page="/settings/tokens"
        )
        assert response.status_code == 201
    listed = await client.get("/api/v1/auth/tokens", headers=account.headers)
    found: dict[str, Any] = next(t for t in listed.json() if t["name"] == name)
    return found


@pytest.mark.parametrize("front", BOTH)
async def test_token_creation_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    created = await _create_token(client, admin, front, "release")
    row = await only_row(db, "token.create")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("api_token", UUID(created["id"]))
    assert row.details == {"name": "release"}


@pytest.mark.parametrize("front", BOTH)
async def test_token_revocation_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account, front: FrontEnd
) -> None:
    created = await _create_token(client, admin, "api", "release")
    if front == "api":
        response = await client.delete(
            f"/api/v1/auth/tokens/{created['id']}", headers=admin.headers
        )
        assert response.status_code == 204
    else:
        response = await web_post(
            client, admin, f"/settings/tokens/{created['id']}/revoke", page="/settings/tokens"
        )
        assert response.status_code == 303
    row = await only_row(db, "token.revoke")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("api_token", UUID(created["id"]))


# The tenant and the user's own name and password have no web form yet: API only.


async def test_tenant_update_is_audited(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    response = await client.patch(
        "/api/v1/tenant", headers=admin.headers, json={"name": "Initrode", "domain": "ini.example"}
    )
    assert response.status_code == 200
    row = await only_row(db, "tenant.update")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("tenant", UUID(admin.tenant_id))
    assert row.details == {"fields": ["name", "domain"]}


async def test_me_update_and_password_change_are_audited_without_values(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    response = await client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={
            "full_name": "Ada L.",
            "current_password": admin.password,
            "new_password": "brand new password",
        },
    )
    assert response.status_code == 200
    assert response.json()["full_name"] == "Ada L."
    row = await only_row(db, "me.update")
    assert row.actor_profile_id == UUID(admin.user_id)
    assert (row.resource_type, row.resource_id) == ("profile", UUID(admin.user_id))
    # The sign-up session made the change and stays: no other session to end.
    assert row.details == {"fields": ["full_name", "password"], "sessions_revoked": 0}
    wrong = await client.patch(
        "/api/v1/me",
        headers=admin.headers,
        json={"full_name": "Nope", "current_password": "wrong", "new_password": "another one!"},
    )
    assert wrong.status_code == 422
    assert len(await audit_rows(db, "me.update")) == 1
    me = await client.get("/api/v1/me", headers=admin.headers)
    assert me.json()["full_name"] == "Ada L."
