"""Sign-up modes, the sign-up budget per address, invitations, and answers that never tell
which e-mails other tenants hold."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update

from shipyard.accounts.models import Invitation
from shipyard.db import Database
from tests.integration.accounts.conftest import AppClient, audit_actions
from tests.support.api import Account, add_member, signup, unique_email
from tests.support.browser_http import browser_client, csrf_token

PASSWORD = "a long enough password"


@pytest.fixture(autouse=True)
def _request_urls_unlogged(caplog: pytest.LogCaptureFixture) -> None:
    """An invitation link carries its token in the path: keep the test client from logging
    request URLs, as the server keeps its access log off below debug (shipyard.logs)."""
    caplog.set_level(logging.WARNING, logger="httpx")


def _signup_body(email: str | None = None, tenant: str = "Team") -> dict[str, str]:
    return {"email": email or unique_email(), "password": PASSWORD, "tenant_name": tenant}


async def test_unset_mode_opens_a_fresh_install_then_turns_to_invitations(
    app_client: AppClient,
) -> None:
    async with app_client(signup=None) as http:
        assert (await http.get("/api/v1/auth/signup-mode")).json() == {"signup": "open"}
        first = await http.post("/api/v1/auth/signup", json=_signup_body())
        assert first.status_code == 201, first.text
        assert (await http.get("/api/v1/auth/signup-mode")).json() == {"signup": "invite"}
        second = await http.post("/api/v1/auth/signup", json=_signup_body())
        assert second.status_code == 403
        assert second.json()["error"]["code"] == "signup_invite_only"
        page = await http.get("/signup")
        assert "Sign-up is by invitation" in page.text
        assert 'action="/signup"' not in page.text
        login_page = await http.get("/login")
        assert 'href="/signup"' not in login_page.text


async def test_open_mode_keeps_sign_up_open_and_closed_mode_leaves_it_to_the_cli(
    app_client: AppClient, admin: Account
) -> None:
    async with app_client(signup="open") as http:
        assert (await http.post("/api/v1/auth/signup", json=_signup_body())).status_code == 201
    async with app_client(signup="closed") as http:
        refused = await http.post("/api/v1/auth/signup", json=_signup_body())
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "signup_closed"
        invite = await http.post(
            "/api/v1/tenant/invitations", headers=admin.headers, json={"email": unique_email()}
        )
        assert invite.status_code == 403
        member = await http.post(
            "/api/v1/tenant/members",
            headers=admin.headers,
            json={"email": unique_email(), "password": PASSWORD},
        )
        assert member.status_code == 403
        assert "Sign-up is closed" in (await http.get("/signup")).text


async def test_signup_is_throttled_per_address(app_client: AppClient) -> None:
    async with app_client(signup="open", signup_max_per_address=2, peer="10.9.9.9") as http:
        for _ in range(2):
            assert (await http.post("/api/v1/auth/signup", json=_signup_body())).status_code == 201
        blocked = await http.post("/api/v1/auth/signup", json=_signup_body())
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 3000
        assert blocked.json()["error"]["code"] == "rate_limited"
        # The web form says so too, with the same header.
        page = await http.post("/signup", data=_signup_body())
        assert page.status_code in (403, 429)
    async with app_client(signup="open", signup_max_per_address=2, peer="10.9.9.10") as http:
        assert (await http.post("/api/v1/auth/signup", json=_signup_body())).status_code == 201


async def test_add_member_answers_alike_for_another_tenants_email(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    fresh = await client.post(
        "/api/v1/tenant/members",
        headers=admin.headers,
        json={"email": unique_email(), "password": PASSWORD, "role": "viewer"},
    )
    elsewhere = await client.post(
        "/api/v1/tenant/members",
        headers=admin.headers,
        json={"email": other_admin.email, "password": PASSWORD, "role": "viewer"},
    )
    assert fresh.status_code == elsewhere.status_code == 201
    assert fresh.json().keys() == elsewhere.json().keys()
    assert elsewhere.json()["email"] == other_admin.email
    # Nothing happened to the other tenant's account.
    me = await client.get("/api/v1/me", headers=other_admin.headers)
    assert me.json()["tenant_id"] == other_admin.tenant_id and me.json()["role"] == "admin"
    login = await client.post(
        "/api/v1/auth/login", json={"email": other_admin.email, "password": other_admin.password}
    )
    assert login.status_code == 200
    # A member of one's own tenant is plainly a conflict: the admin sees them anyway.
    own = await client.post(
        "/api/v1/tenant/members",
        headers=admin.headers,
        json={"email": admin.email, "password": PASSWORD},
    )
    assert own.status_code == 409
    assert own.json()["error"]["code"] == "already_member"


async def _invite(
    client: httpx.AsyncClient, admin: Account, email: str, role: str = "developer"
) -> dict[str, str]:
    response = await client.post(
        "/api/v1/tenant/invitations", headers=admin.headers, json={"email": email, "role": role}
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def _token(link: str) -> str:
    return link.rsplit("/invite/", 1)[1]


async def test_invitation_is_accepted_once_with_its_role(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    email = unique_email("invitee")
    invitation = await _invite(client, admin, email, role="viewer")
    assert invitation["link"].startswith("http://127.0.0.1:8000/invite/shyinv_")
    assert invitation["status"] == "pending"
    listed = await client.get("/api/v1/tenant/invitations", headers=admin.headers)
    assert [(i["email"], i["status"]) for i in listed.json()] == [(email, "pending")]
    assert _token(invitation["link"]) not in listed.text
    # The web page shows what the link offers.
    page = await client.get(f"/invite/{_token(invitation['link'])}")
    assert page.status_code == 200 and email in page.text and "viewer" in page.text

    accepted = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"token": _token(invitation["link"]), "password": PASSWORD, "full_name": "Vi"},
    )
    assert accepted.status_code == 201, accepted.text
    user = accepted.json()["user"]
    assert (user["email"], user["role"], user["tenant_id"]) == (email, "viewer", admin.tenant_id)
    headers = {"Authorization": f"Bearer {accepted.json()['access_token']}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    again = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"token": _token(invitation["link"]), "password": PASSWORD},
    )
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "invitation_accepted"
    listed = await client.get("/api/v1/tenant/invitations", headers=admin.headers)
    assert listed.json()[0]["status"] == "accepted"
    [created] = await audit_actions(db, "invitation.create")
    assert created.actor_profile_id == UUID(admin.user_id)
    assert created.details == {"email": email, "role": "viewer"}
    [accept] = await audit_actions(db, "invitation.accept")
    assert accept.actor_profile_id == UUID(user["id"])
    assert str(accept.ip_address) == "127.0.0.1"


async def test_revoked_expired_and_unknown_invitations_do_not_work(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    revoked = await _invite(client, admin, unique_email())
    response = await client.delete(
        f"/api/v1/tenant/invitations/{revoked['id']}", headers=admin.headers
    )
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    expired = await _invite(client, admin, unique_email())
    async with db.session(system=True) as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.id == UUID(expired["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    for invitation, code in ((revoked, "invitation_revoked"), (expired, "invitation_expired")):
        answer = await client.post(
            "/api/v1/auth/accept-invitation",
            json={"token": _token(invitation["link"]), "password": PASSWORD},
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == code
        page = await client.get(f"/invite/{_token(invitation['link'])}")
        assert page.status_code == 404 and 'id="invitation-problem"' in page.text
    unknown = await client.post(
        "/api/v1/auth/accept-invitation", json={"token": "shyinv_nope", "password": PASSWORD}
    )
    assert unknown.json()["error"]["code"] == "invitation_invalid"
    assert len(await audit_actions(db, "invitation.revoke")) == 1


async def test_a_new_invitation_replaces_the_pending_one_and_members_are_refused(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    email = unique_email()
    first = await _invite(client, admin, email)
    second = await _invite(client, admin, email)
    old = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"token": _token(first["link"]), "password": PASSWORD},
    )
    assert old.json()["error"]["code"] == "invitation_revoked"
    member = await add_member(client, admin, "developer")
    taken = await client.post(
        "/api/v1/tenant/invitations", headers=admin.headers, json={"email": member.email}
    )
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "already_member"
    # Another tenant's e-mail is invited like any other: the answer tells nothing.
    elsewhere = await _invite(client, admin, other_admin.email)
    assert elsewhere.keys() == second.keys()
    # Non-admins neither invite nor list.
    for method, path in (
        ("GET", "/api/v1/tenant/invitations"),
        ("POST", "/api/v1/tenant/invitations"),
    ):
        refused = await client.request(
            method, path, headers=member.headers, json={"email": unique_email()}
        )
        assert refused.status_code == 403


async def test_invitation_through_the_web_pages(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    email = unique_email("webinvitee")
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        created = await http.post(
            "/settings/invitations", data={"email": email, "role": "developer", "csrf_token": token}
        )
        assert created.status_code == 201
        assert 'id="invitation-link"' in created.text
        link = created.text.split('id="invitation-link" class="secret">', 1)[1].split("<", 1)[0]
        bad = await http.post("/settings/invitations", data={"email": "nope", "csrf_token": token})
        assert bad.status_code == 422 and 'value="nope"' in bad.text
    async with browser_client(client, None) as visitor:
        path = "/invite/" + _token(link)
        form_token = await csrf_token(visitor, path)
        short = await visitor.post(path, data={"password": "short", "csrf_token": form_token})
        assert short.status_code == 422 and 'id="e-password"' in short.text
        joined = await visitor.post(
            path, data={"password": PASSWORD, "full_name": "Web", "csrf_token": form_token}
        )
        assert joined.status_code == 303
        assert (await visitor.get("/settings")).status_code == 200
    members = await client.get("/api/v1/tenant/members", headers=admin.headers)
    assert email in [member["email"] for member in members.json()]
    # Revoking from the members page.
    other = await _invite(client, admin, unique_email())
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        assert other["email"] in (await http.get("/settings/members")).text
        revoked = await http.post(
            f"/settings/invitations/{other['id']}/revoke",
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert revoked.status_code == 200 and "revoked" in revoked.text
    web_revoke = await audit_actions(db, "invitation.revoke")
    assert [str(row.ip_address) for row in web_revoke] == ["127.0.0.1"]


async def test_signup_page_with_taken_email_looks_like_success(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, None) as http:
        token = await csrf_token(http, "/signup")
        response = await http.post(
            "/signup", data={**_signup_body(admin.email), "csrf_token": token}
        )
        assert response.status_code == 303 and response.headers["location"] == "/"
        # The cookie opens nothing: the owner is asked to log in.
        home = await http.get("/")
        assert home.status_code in (303, 307) or "Log in" in home.text
    _ = signup  # the API helper signs up tenants elsewhere in these tests
