"""Settings pages over HTTP: members and roles, API tokens, roles enforced on the server."""

from __future__ import annotations

import httpx

from tests.support.api import Account, add_member, unique_email
from tests.support.browser_http import browser_client, csrf_token

HTMX = {"HX-Request": "true"}


async def _members(client: httpx.AsyncClient, admin: Account) -> dict[str, dict[str, str]]:
    listed = await client.get("/api/v1/tenant/members", headers=admin.headers)
    return {member["email"]: member for member in listed.json()}


async def test_admin_adds_changes_and_removes_a_member(
    client: httpx.AsyncClient, admin: Account
) -> None:
    email = unique_email("new")
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        added = await http.post(
            "/settings/members",
            data={
                "email": email,
                "password": "long enough password",
                "role": "viewer",
                "csrf_token": token,
            },
        )
        assert added.status_code == 303
        shown = await http.get(added.headers["location"])
        assert f"{email} was added." in shown.text
        member = (await _members(client, admin))[email]
        assert member["role"] == "viewer"

        changed = await http.post(
            f"/settings/members/{member['id']}/role",
            data={"role": "developer"},
            headers={**HTMX, "X-CSRF-Token": token},
        )
        assert changed.status_code == 200
        assert changed.text.lstrip().startswith(f'<tr id="member-{member["id"]}"')
        assert "is now developer" in changed.text
        assert (await _members(client, admin))[email]["role"] == "developer"

        removed = await http.post(
            f"/settings/members/{member['id']}/remove", headers={**HTMX, "X-CSRF-Token": token}
        )
        assert removed.status_code == 200
        assert email not in await _members(client, admin)


async def test_member_form_errors_are_inline_and_keep_values(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        bad = await http.post(
            "/settings/members",
            data={"email": "nope", "password": "short", "role": "owner", "csrf_token": token},
        )
        assert bad.status_code == 422
        assert 'id="e-email"' in bad.text
        assert 'id="e-password"' in bad.text
        assert 'id="e-role"' in bad.text
        assert 'value="nope"' in bad.text
        taken = await http.post(
            "/settings/members",
            data={
                "email": admin.email,
                "password": "long enough password",
                "role": "viewer",
                "csrf_token": token,
            },
        )
        assert taken.status_code == 409
        assert "This e-mail is already a member of your team." in taken.text


async def test_last_admin_cannot_be_demoted_and_the_reason_is_shown(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        response = await http.post(
            f"/settings/members/{admin.user_id}/role",
            data={"role": "viewer"},
            headers={**HTMX, "X-CSRF-Token": token},
        )
        assert response.status_code == 409
        # HTMX shows it in the page's alert area, not in place of the row.
        assert response.headers["HX-Retarget"] == "#alerts"
        assert "A tenant needs at least one admin." in response.text
        assert "Traceback" not in response.text
    assert (await _members(client, admin))[admin.email]["role"] == "admin"


async def test_viewer_and_developer_see_no_member_controls_and_are_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for role in ("viewer", "developer"):
        account = await add_member(client, admin, role)
        async with browser_client(client, account) as http:
            page = await http.get("/settings/members")
            assert page.status_code == 200
            assert admin.email in page.text
            assert "Add member" not in page.text
            assert "/remove" not in page.text
            assert "/role" not in page.text
            token = await csrf_token(http, "/settings/members")
            forged = await http.post(
                "/settings/members",
                data={
                    "email": unique_email("forged"),
                    "password": "long enough password",
                    "role": "admin",
                    "csrf_token": token,
                },
            )
            assert forged.status_code == 403
            assert "does not allow this" in forged.text
            promote = await http.post(
                f"/settings/members/{account.user_id}/role",
                data={"role": "admin", "csrf_token": token},
            )
            assert promote.status_code == 403
            remove = await http.post(
                f"/settings/members/{admin.user_id}/remove", data={"csrf_token": token}
            )
            assert remove.status_code == 403
    members = await _members(client, admin)
    assert len(members) == 3
    assert members[admin.email]["role"] == "admin"
    assert not any(email.startswith("forged") for email in members)


async def test_admin_of_another_tenant_cannot_touch_our_members(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, other_admin) as http:
        token = await csrf_token(http, "/settings/members")
        page = await http.get("/settings/members")
        assert viewer.email not in page.text
        response = await http.post(
            f"/settings/members/{viewer.user_id}/role", data={"role": "admin", "csrf_token": token}
        )
        assert response.status_code == 404
        response = await http.post(
            f"/settings/members/{viewer.user_id}/remove", data={"csrf_token": token}
        )
        assert response.status_code == 404
    assert (await _members(client, admin))[viewer.email]["role"] == "viewer"


async def test_token_is_shown_once_works_and_can_be_revoked(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/tokens")
        empty = await http.get("/settings/tokens")
        assert "No API tokens yet" in empty.text
        created = await http.post(
            "/settings/tokens",
            data={"name": "release", "expires_in_days": "30", "csrf_token": token},
        )
        assert created.status_code == 201
        secret = created.text.split('id="new-token" class="secret">', 1)[1].split("<", 1)[0]
        assert secret.startswith("shy_")
        assert "shown only once" in created.text
        listed = await http.get("/settings/tokens")
        assert "release" in listed.text
        assert secret not in listed.text
        assert (
            await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        ).status_code == 200
        token_id = (await client.get("/api/v1/auth/tokens", headers=admin.headers)).json()[0]["id"]
        revoked = await http.post(
            f"/settings/tokens/{token_id}/revoke", headers={**HTMX, "X-CSRF-Token": token}
        )
        assert revoked.status_code == 200
        assert "revoked" in revoked.text
        assert (
            await client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        ).status_code == 401


async def test_token_form_rejects_bad_values_by_field(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/tokens")
        bad = await http.post(
            "/settings/tokens", data={"name": "", "expires_in_days": "0", "csrf_token": token}
        )
        assert bad.status_code == 422
        assert 'id="e-name"' in bad.text
        assert 'id="e-expires_in_days"' in bad.text
        worse = await http.post(
            "/settings/tokens", data={"name": "x", "expires_in_days": "soon", "csrf_token": token}
        )
        assert worse.status_code == 422
        assert 'id="e-expires_in_days"' in worse.text


async def test_another_users_token_cannot_be_revoked(
    client: httpx.AsyncClient, admin: Account
) -> None:
    developer = await add_member(client, admin, "developer")
    created = await client.post(
        "/api/v1/auth/tokens", headers=developer.headers, json={"name": "theirs"}
    )
    token_id = created.json()["id"]
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/tokens")
        response = await http.post(
            f"/settings/tokens/{token_id}/revoke", data={"csrf_token": token}
        )
        assert response.status_code == 404
        assert "Token not found." in response.text
    theirs = await client.get("/api/v1/auth/tokens", headers=developer.headers)
    assert theirs.json()[0]["revoked_at"] is None
