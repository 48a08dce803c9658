"""The SSO admin API: providers (secret write-only, config checked per kind, 404 across
tenants), role rules (order, highest role wins), the log-in policy (slug, default role,
requiring SSO with a break-glass admin), the explanation of a member's role, and the accounts
changes (password log-in refused under required SSO, deactivation)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.sso.core.helpers import entries, signed_in
from tests.support import canary
from tests.support.api import Account, add_member, error_fields, unique_email

OIDC = {"issuer": "https://idp.example.com/realms/acme", "client_id": "shipyard"}
LDAP = {
    "url": "ldap://127.0.0.1:3890",
    "bind_dn": "cn=svc,dc=example,dc=com",
    "user_base": "ou=people,dc=example,dc=com",
}


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)


async def make_provider(client: httpx.AsyncClient, admin: Account, **body: Any) -> dict[str, Any]:
    body = {"kind": "oidc", "name": "Corp", "config": OIDC, **body}
    created = await api(client, admin, "POST", "/sso/providers", body)
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


async def test_provider_crud_keeps_the_secret_write_only(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    secret = canary.remember("oidc-client-secret-plaintext-core", "sso client secret")
    created = await make_provider(client, admin, secret=secret)
    assert created["has_secret"] is True
    assert "secret" not in created
    assert created["config"]["scopes"] == ["openid", "email", "profile"]
    assert created["config"]["groups_claim"] == "groups"
    assert created["login_path"] == f"/login/oidc/{created['id']}"
    provider_id = created["id"]

    listed = await api(client, admin, "GET", "/sso/providers")
    assert [item["id"] for item in listed.json()] == [provider_id]
    assert secret not in listed.text

    # PATCH without the secret keeps it; the config merges.
    renamed = await api(
        client,
        admin,
        "PATCH",
        f"/sso/providers/{provider_id}",
        {"name": "Keycloak", "config": {"groups_claim": "realm_access.roles"}},
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["has_secret"] is True
    assert renamed.json()["config"]["groups_claim"] == "realm_access.roles"
    assert renamed.json()["config"]["issuer"] == OIDC["issuer"]
    cleared = await api(
        client, admin, "PATCH", f"/sso/providers/{provider_id}", {"clear_secret": True}
    )
    assert cleared.json()["has_secret"] is False

    # Another tenant sees nothing of it.
    for method, path, body in (
        ("GET", f"/sso/providers/{provider_id}", None),
        ("PATCH", f"/sso/providers/{provider_id}", {"name": "x"}),
        ("DELETE", f"/sso/providers/{provider_id}", None),
        ("POST", f"/sso/providers/{provider_id}/test", None),
    ):
        theirs = await api(client, other_admin, method, path, body)
        assert theirs.status_code == 404, (method, path, theirs.text)
    assert (await api(client, other_admin, "GET", "/sso/providers")).json() == []

    duplicate = await api(
        client,
        admin,
        "POST",
        "/sso/providers",
        {"kind": "ldap", "name": "keycloak", "config": LDAP},
    )
    assert duplicate.status_code == 409

    deleted = await api(client, admin, "DELETE", f"/sso/providers/{provider_id}")
    assert deleted.status_code == 204
    assert (await api(client, admin, "GET", f"/sso/providers/{provider_id}")).status_code == 404

    actions = {entry.action for entry in await all_entries(db, admin.tenant_id)}
    assert {"sso.provider.create", "sso.provider.update", "sso.provider.delete"} <= actions
    async with db.session(system=True) as session:
        texts = [
            str(row.details) + str(row.changes) for row in await session.scalars(select(AuditEvent))
        ]
    assert not any(secret in text for text in texts)


async def all_entries(db: Database, tenant_id: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.tenant_id == UUID(tenant_id))
        )
        return list(rows)


async def test_provider_config_is_checked_per_kind(
    client: httpx.AsyncClient, admin: Account
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "oidc", "name": "a", "config": {"client_id": "x"}}, "config.issuer"),
        (
            {"kind": "oidc", "name": "a", "config": {**OIDC, "issuer": "http://idp.example.com"}},
            "config.issuer",
        ),
        ({"kind": "oidc", "name": "a", "config": {**OIDC, "scopes": ["email"]}}, "config.scopes"),
        ({"kind": "oidc", "name": "a", "config": {**OIDC, "bogus": 1}}, "config.bogus"),
        ({"kind": "ldap", "name": "a", "config": {**LDAP, "url": "http://x"}}, "config.url"),
        (
            {"kind": "ldap", "name": "a", "config": {**LDAP, "user_filter": "(uid=x)"}},
            "config.user_filter",
        ),
        (
            {"kind": "ldap", "name": "a", "config": {**LDAP, "group_search": "nested"}},
            "config.group_search",
        ),
        # What only the LDAP protocol's own reading refuses (saved, it would fail every
        # sign-in and answer the provider test with a 500).
        (
            {"kind": "ldap", "name": "a", "config": {**LDAP, "user_filter": "(uid={username}"}},
            "config.user_filter",
        ),
        (
            {"kind": "ldap", "name": "a", "config": {**LDAP, "email_attribute": "mail; x"}},
            "config.email_attribute",
        ),
        ({"kind": "saml", "name": "a", "config": {}}, "kind"),
        ({"kind": "oidc", "name": " ", "config": OIDC}, "name"),
        # The outbound policy: the metadata address is refused whatever the settings.
        (
            {"kind": "oidc", "name": "a", "config": {**OIDC, "issuer": "https://169.254.169.254"}},
            "config.issuer",
        ),
        (
            {"kind": "ldap", "name": "a", "config": {**LDAP, "url": "ldap://169.254.169.254"}},
            "config.url",
        ),
        # Microsoft Graph (Entra ID's group overage): the same rules as the issuer.
        (
            {"kind": "oidc", "name": "a", "config": {**OIDC, "graph_url": "http://graph.example"}},
            "config.graph_url",
        ),
        (
            {
                "kind": "oidc",
                "name": "a",
                "config": {**OIDC, "graph_url": "https://169.254.169.254/graph"},
            },
            "config.graph_url",
        ),
    ]
    for body, field in cases:
        answer = await api(client, admin, "POST", "/sso/providers", body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in error_fields(answer), (body, answer.text)
    loopback = await make_provider(
        client, admin, name="local", config={**OIDC, "issuer": "http://127.0.0.1:9/"}
    )
    assert loopback["config"]["issuer"] == "http://127.0.0.1:9"
    # Entra ID's public cloud unless another Graph is set.
    assert loopback["config"]["graph_url"] == "https://graph.microsoft.com"
    bad_patch = await api(
        client,
        admin,
        "PATCH",
        f"/sso/providers/{loopback['id']}",
        {"config": {"issuer": "ftp://x"}},
    )
    assert bad_patch.status_code == 422 and error_fields(bad_patch) == ["config.issuer"]


async def test_test_answers_502_with_the_reason(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    provider = await make_provider(
        client, admin, name="down", config={**OIDC, "issuer": "http://127.0.0.1:9"}
    )
    answer = await api(client, admin, "POST", f"/sso/providers/{provider['id']}/test")
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["message"]
    tested = await entries(db, admin.tenant_id, "sso.provider.test")
    assert len(tested) == 1 and tested[0].outcome == "failure"


async def test_rules_in_order_and_the_highest_role_wins(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    db: Database,
    settings: Settings,
) -> None:
    provider = await make_provider(client, admin)
    provider_id = UUID(provider["id"])
    viewers = (
        await api(client, admin, "POST", "/sso/rules", {"group": "staff", "role": "viewer"})
    ).json()
    admins = (
        await api(client, admin, "POST", "/sso/rules", {"group": "ops", "role": "admin"})
    ).json()
    devs = (
        await api(
            client,
            admin,
            "POST",
            "/sso/rules",
            {"group": "devs", "role": "developer", "position": 0, "provider_id": str(provider_id)},
        )
    ).json()
    listed = (await api(client, admin, "GET", "/sso/rules")).json()
    assert [rule["id"] for rule in listed] == [devs["id"], viewers["id"], admins["id"]]
    assert [rule["position"] for rule in listed] == [0, 1, 2]

    opened = await signed_in(
        db,
        settings,
        provider_id,
        subject="s1",
        email=unique_email("w"),
        groups=("staff", "ops", "devs"),
    )
    assert opened.me.role == "admin"
    explained = await api(client, admin, "GET", f"/sso/members/{opened.me.id}")
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["identities"][0]["rule"]["id"] == admins["id"]
    assert body["identities"][0]["rule"]["group"] == "ops"
    assert body["identities"][0]["groups"] == ["devs", "ops", "staff"]
    assert "rule #3" in body["explanation"]

    reordered = await api(
        client, admin, "PUT", "/sso/rules/order", {"ids": [admins["id"], viewers["id"], devs["id"]]}
    )
    assert reordered.status_code == 200, reordered.text
    assert [rule["position"] for rule in reordered.json()] == [0, 1, 2]
    incomplete = await api(client, admin, "PUT", "/sso/rules/order", {"ids": [admins["id"]]})
    assert incomplete.status_code == 422 and error_fields(incomplete) == ["ids"]

    changed = await api(client, admin, "PATCH", f"/sso/rules/{admins['id']}", {"role": "developer"})
    assert changed.json()["role"] == "developer"
    theirs = await api(
        client, other_admin, "PATCH", f"/sso/rules/{admins['id']}", {"role": "viewer"}
    )
    assert theirs.status_code == 404
    foreign = await api(
        client,
        other_admin,
        "POST",
        "/sso/rules",
        {"group": "x", "role": "viewer", "provider_id": str(provider_id)},
    )
    assert foreign.status_code == 422 and error_fields(foreign) == ["provider_id"]
    assert (await api(client, admin, "DELETE", f"/sso/rules/{viewers['id']}")).status_code == 204
    after = (await api(client, admin, "GET", "/sso/rules")).json()
    assert [(rule["id"], rule["position"]) for rule in after] == [
        (admins["id"], 0),
        (devs["id"], 1),
    ]
    # The next sign-in: developer from the changed rule (first such in order is credited).
    again = await signed_in(
        db, settings, provider_id, subject="s1", email=opened.me.email, groups=("ops", "devs")
    )
    assert again.me.role == "developer"
    body = (await api(client, admin, "GET", f"/sso/members/{opened.me.id}")).json()
    assert body["identities"][0]["rule"]["id"] == admins["id"]
    assert (
        await api(client, other_admin, "GET", f"/sso/members/{opened.me.id}")
    ).status_code == 404


async def test_policy_requires_sso_except_for_the_break_glass_admin(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    db: Database,
    settings: Settings,
) -> None:
    developer = await add_member(client, admin, "developer")
    await add_member(client, admin, "admin")  # so demoting the break-glass admin is no last-admin
    personal = await client.post(
        "/api/v1/auth/tokens", headers=developer.headers, json={"name": "ci"}
    )
    personal_token = canary.remember(personal.json()["token"], "personal token")

    current = (await api(client, admin, "GET", "/sso/settings")).json()
    assert current["redirect_uri"] == settings.base_url.rstrip("/") + "/login/oidc/callback"
    assert current["login_url"].endswith(f"/login/sso/{admin.tenant_id}")
    assert current["sso_required"] is False and current["default_role"] is None

    no_provider = await api(client, admin, "PATCH", "/sso/settings", {"sso_required": True})
    assert no_provider.status_code == 422 and error_fields(no_provider) == ["sso_required"]
    assert "enabled identity provider" in no_provider.json()["error"]["message"]
    await make_provider(client, admin)
    no_glass = await api(client, admin, "PATCH", "/sso/settings", {"sso_required": True})
    assert no_glass.status_code == 422 and "break-glass" in no_glass.json()["error"]["message"]
    not_admin = await api(
        client, admin, "PATCH", "/sso/settings", {"break_glass_member_id": developer.user_id}
    )
    assert not_admin.status_code == 422 and error_fields(not_admin) == ["break_glass_member_id"]
    foreign = await api(
        client, admin, "PATCH", "/sso/settings", {"break_glass_member_id": other_admin.user_id}
    )
    assert foreign.status_code == 422

    bad_slug = await api(client, admin, "PATCH", "/sso/settings", {"login_slug": "Acme!"})
    assert bad_slug.status_code == 422 and error_fields(bad_slug) == ["login_slug"]
    required = await api(
        client,
        admin,
        "PATCH",
        "/sso/settings",
        {
            "sso_required": True,
            "break_glass_member_id": admin.user_id,
            "login_slug": "acme",
            "default_role": "viewer",
        },
    )
    assert required.status_code == 200, required.text
    assert required.json()["login_url"].endswith("/login/t/acme")
    taken = await api(client, other_admin, "PATCH", "/sso/settings", {"login_slug": "acme"})
    assert taken.status_code == 409, taken.text

    refused = await client.post(
        "/api/v1/auth/login", json={"email": developer.email, "password": developer.password}
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "sso_required"
    assert "/login/t/acme" in refused.json()["error"]["message"]
    glass = await client.post(
        "/api/v1/auth/login", json={"email": admin.email, "password": admin.password}
    )
    assert glass.status_code == 200, glass.text
    # Personal tokens keep working for automation.
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {personal_token}"})
    assert me.status_code == 200

    # The break-glass admin stays an admin while SSO is required.
    demoted = await api(
        client, admin, "PATCH", f"/tenant/members/{admin.user_id}", {"role": "developer"}
    )
    assert demoted.status_code == 409 and demoted.json()["error"]["code"] == "break_glass"

    # The last enabled provider cannot go while SSO is required.
    provider_id = (await api(client, admin, "GET", "/sso/providers")).json()[0]["id"]
    last = await api(client, admin, "DELETE", f"/sso/providers/{provider_id}")
    assert last.status_code == 409
    # Deactivation revokes every token; reactivation lets them sign in anew.
    off = await api(client, admin, "POST", f"/tenant/members/{developer.user_id}/deactivate")
    assert off.status_code == 200, off.text
    assert off.json()["is_disabled"] is True and off.json()["disabled_reason"] == "admin"
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {personal_token}"})
    assert me.status_code == 401
    assert (await client.get("/api/v1/me", headers=developer.headers)).status_code == 401
    last_admin = await api(client, admin, "POST", f"/tenant/members/{admin.user_id}/deactivate")
    assert last_admin.status_code == 409
    theirs = await api(
        client, other_admin, "POST", f"/tenant/members/{developer.user_id}/deactivate"
    )
    assert theirs.status_code == 404
    on = await api(client, admin, "POST", f"/tenant/members/{developer.user_id}/reactivate")
    assert on.status_code == 200 and on.json()["is_disabled"] is False
    actions = [entry.action for entry in await all_entries(db, admin.tenant_id)]
    assert "member.deactivate" in actions and "member.reactivate" in actions
    assert "sso.settings.update" in actions

    # An invitation into the team is refused: the invitee signs in through SSO.
    invited = await api(
        client,
        admin,
        "POST",
        "/tenant/invitations",
        {"email": unique_email("inv"), "role": "viewer"},
    )
    assert invited.status_code == 201, invited.text
    token = invited.json()["link"].rsplit("/", 1)[-1]
    accepted = await client.post(
        "/api/v1/auth/accept-invitation",
        json={"token": token, "password": "a long enough password"},
    )
    assert accepted.status_code == 403, accepted.text
    assert accepted.json()["error"]["code"] == "sso_required"


async def test_members_need_manage_sso(client: httpx.AsyncClient, admin: Account) -> None:
    developer = await add_member(client, admin, "developer")
    for method, path in (
        ("GET", "/sso/providers"),
        ("GET", "/sso/rules"),
        ("GET", "/sso/settings"),
        ("PATCH", "/sso/settings"),
        ("GET", f"/sso/members/{developer.user_id}"),
    ):
        answer = await api(client, developer, method, path, {} if method == "PATCH" else None)
        assert answer.status_code == 403, (path, answer.text)
