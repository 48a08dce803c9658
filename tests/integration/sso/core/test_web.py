"""SSO over the web: the settings page (providers with the secret kept unless retyped, a test
answer, rules moved and edited, the policy form), the members page (deactivate, reactivate, the
rule that gave an SSO member their role), and the log-in pages (a team's own by slug and by id,
discovery by e-mail domain, the password form behind "break-glass" under required SSO)."""

from __future__ import annotations

import html
import re
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.sso.models import SsoProvider, SsoRoleRule
from tests.integration.sso.core.helpers import set_policy, signed_in
from tests.support import canary
from tests.support.api import Account, add_member, unique_email
from tests.support.browser_http import browser_client, csrf_token


def text_of(page: httpx.Response) -> str:
    return html.unescape(page.text)


async def test_settings_page_providers_rules_and_policy(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    secret = canary.remember("web-client-secret-plaintext-sso", "sso client secret (web)")
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/sso")
        page = await http.get("/settings/sso")
        assert settings.base_url.rstrip("/") + "/login/oidc/callback" in page.text
        assert "No identity provider yet." in page.text

        bad = await http.post(
            "/settings/sso/providers",
            data={
                "csrf_token": token,
                "kind": "oidc",
                "name": "Corp",
                "issuer": "http://idp.example.com",
                "client_id": "shipyard",
                "enabled": "on",
            },
        )
        assert bad.status_code == 422, bad.text
        assert "must be https" in text_of(bad)
        assert 'value="Corp"' in bad.text

        created = await http.post(
            "/settings/sso/providers",
            data={
                "csrf_token": token,
                "kind": "oidc",
                "name": "Corp",
                "issuer": "https://idp.example.com",
                "client_id": "shipyard",
                "secret": secret,
                "scopes": "openid email groups",
                "enabled": "on",
            },
        )
        assert created.status_code == 303, created.text
        async with db.session(system=True) as session:
            provider = await session.scalar(select(SsoProvider))
            assert provider is not None and provider.secret == secret
            assert provider.config["scopes"] == ["openid", "email", "groups"]
            provider_id = provider.id
        listed = await http.get("/settings/sso")
        assert "Corp" in listed.text and secret not in listed.text

        edit = await http.get(f"/settings/sso/providers/{provider_id}")
        assert edit.status_code == 200 and secret not in edit.text
        saved = await http.post(
            f"/settings/sso/providers/{provider_id}",
            data={
                "csrf_token": token,
                "name": "Corp SSO",
                "issuer": "https://idp.example.com",
                "client_id": "shipyard2",
                "scopes": "openid email",
                "enabled": "on",
            },
        )
        assert saved.status_code == 303, saved.text
        async with db.session(system=True) as session:
            provider = await session.get(SsoProvider, provider_id)
            assert provider is not None and provider.secret == secret  # kept: not retyped
            assert provider.name == "Corp SSO" and provider.config["client_id"] == "shipyard2"

        ldap = await http.post(
            "/settings/sso/providers",
            data={
                "csrf_token": token,
                "kind": "ldap",
                "name": "Directory",
                "url": "ldap://127.0.0.1:9",
                "bind_dn": "cn=svc,dc=x",
                "user_base": "dc=x",
                "enabled": "on",
                "nested_groups": "on",
                "timeout_seconds": "2",
            },
        )
        assert ldap.status_code == 303, ldap.text
        async with db.session(system=True) as session:
            directory = await session.scalar(
                select(SsoProvider).where(SsoProvider.name == "Directory")
            )
            assert directory is not None
            assert directory.config["nested_groups"] is True
            assert directory.config["start_tls"] is False

        tested = await http.post(
            f"/settings/sso/providers/{provider_id}/test", data={"csrf_token": token}
        )
        assert tested.status_code in (502, 422), tested.text
        assert 'id="test-result"' in tested.text

        for group, role in (("devs", "developer"), ("ops", "admin")):
            added = await http.post(
                "/settings/sso/rules",
                data={"csrf_token": token, "group": group, "role": role, "provider_id": ""},
            )
            assert added.status_code == 303, added.text
        blank = await http.post(
            "/settings/sso/rules", data={"csrf_token": token, "group": " ", "role": "viewer"}
        )
        assert blank.status_code == 422
        async with db.session(system=True) as session:
            rules = list(await session.scalars(select(SsoRoleRule).order_by(SsoRoleRule.position)))
        assert [rule.group for rule in rules] == ["devs", "ops"]
        moved = await http.post(f"/settings/sso/rules/{rules[1].id}/up", data={"csrf_token": token})
        assert moved.status_code == 303
        edited = await http.post(
            f"/settings/sso/rules/{rules[0].id}",
            data={
                "csrf_token": token,
                "group": "developers",
                "role": "developer",
                "provider_id": str(provider_id),
            },
        )
        assert edited.status_code == 303, edited.text
        async with db.session(system=True) as session:
            rules = list(await session.scalars(select(SsoRoleRule).order_by(SsoRoleRule.position)))
        assert [(rule.group, rule.provider_id) for rule in rules] == [
            ("ops", None),
            ("developers", provider_id),
        ]
        page = await http.get("/settings/sso")
        assert re.search(r"developers</td>\s*<td>developer</td>\s*<td>Corp SSO", page.text)

        refused = await http.post(
            "/settings/sso/policy", data={"csrf_token": token, "sso_required": "on"}
        )
        assert refused.status_code == 422
        assert "break-glass" in text_of(refused)
        slug_bad = await http.post(
            "/settings/sso/policy", data={"csrf_token": token, "login_slug": "Not OK"}
        )
        assert slug_bad.status_code == 422
        policy = await http.post(
            "/settings/sso/policy",
            data={
                "csrf_token": token,
                "login_slug": "acme-web",
                "default_role": "viewer",
                "break_glass_member_id": admin.user_id,
                "sso_required": "on",
            },
        )
        assert policy.status_code == 303, policy.text
        page = await http.get("/settings/sso")
        assert "/login/t/acme-web" in page.text

        deleted = await http.post(
            f"/settings/sso/rules/{rules[0].id}/delete", data={"csrf_token": token}
        )
        assert deleted.status_code == 303


async def test_members_page_deactivates_and_explains(
    client: httpx.AsyncClient, admin: Account, db: Database, settings: Settings
) -> None:
    developer = await add_member(client, admin, "developer")
    async with db.session(system=True) as session:
        provider = SsoProvider(
            tenant_id=UUID(admin.tenant_id),
            kind="oidc",
            name="Corp",
            config={"issuer": "https://idp.example.com", "client_id": "x"},
        )
        session.add(provider)
        await session.flush()
        session.add(
            SsoRoleRule(tenant_id=provider.tenant_id, position=0, group="eng", role="developer")
        )
        provider_id = provider.id
    await signed_in(
        db, settings, provider_id, subject="web-1", email=unique_email("sso"), groups=("eng",)
    )
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/settings/members")
        page = await http.get("/settings/members")
        assert "SSO (Corp): rule #1 'eng' -> developer" in text_of(page)
        off = await http.post(
            f"/settings/members/{developer.user_id}/deactivate", data={"csrf_token": token}
        )
        assert off.status_code == 303
        assert (await client.get("/api/v1/me", headers=developer.headers)).status_code == 401
        page = await http.get("/settings/members")
        assert (
            "deactivated" in page.text
            and f"/settings/members/{developer.user_id}/reactivate" in page.text
        )
        on = await http.post(
            f"/settings/members/{developer.user_id}/reactivate", data={"csrf_token": token}
        )
        assert on.status_code == 303
        self_off = await http.post(
            f"/settings/members/{admin.user_id}/deactivate", data={"csrf_token": token}
        )
        assert self_off.status_code == 409


async def test_log_in_pages_by_slug_id_and_domain(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    async with db.session(system=True) as session:
        oidc = SsoProvider(
            tenant_id=UUID(admin.tenant_id),
            kind="oidc",
            name="Acme IdP",
            config={"issuer": "https://idp.example.com", "client_id": "x"},
        )
        ldap = SsoProvider(
            tenant_id=UUID(admin.tenant_id),
            kind="ldap",
            name="Acme Directory",
            config={"url": "ldap://127.0.0.1:9", "bind_dn": "cn=x", "user_base": "dc=x"},
        )
        off = SsoProvider(
            tenant_id=UUID(admin.tenant_id),
            kind="oidc",
            name="Old IdP",
            enabled=False,
            config={"issuer": "https://old.example.com", "client_id": "x"},
        )
        session.add_all([oidc, ldap, off])
        await session.flush()
        oidc_id, ldap_id = oidc.id, ldap.id
    await set_policy(db, admin.tenant_id, login_slug="acme", domain="acme.example")
    await set_policy(db, other_admin.tenant_id, domain="globex.example")

    async with browser_client(client, None) as http:
        page = await http.get("/login/t/acme?next=/deployments")
        assert page.status_code == 200
        body = text_of(page)
        assert "Log in to Acme" in body
        assert f'href="/login/oidc/{oidc_id}?next=/deployments"' in page.text
        assert "Sign in with Acme IdP" in body
        assert f'action="/login/ldap/{ldap_id}"' in page.text
        assert "Old IdP" not in body
        assert 'id="password-login"' in page.text and 'id="break-glass"' not in page.text
        by_id = await http.get(f"/login/sso/{admin.tenant_id}")
        assert by_id.status_code == 200 and "Sign in with Acme IdP" in text_of(by_id)
        assert (await http.get("/login/t/nobody")).status_code == 404
        assert (await http.get(f"/login/sso/{UUID(int=5)}")).status_code == 404

        await set_policy(db, admin.tenant_id, sso_required=True)
        page = await http.get("/login/t/acme")
        assert 'id="break-glass"' in page.text

        token = await csrf_token(http, "/login")
        login = await http.get("/login")
        assert 'id="sso-discovery"' in login.text
        found = await http.post(
            "/login/sso",
            data={"csrf_token": token, "email": "someone@ACME.example", "next": "/templates"},
        )
        assert found.status_code == 303
        assert found.headers["location"] == "/login/t/acme?next=%2Ftemplates"
        # Globex has the domain but no provider; nobody has the third.
        for email in ("x@globex.example", "x@nowhere.example", "not-an-email"):
            missing = await http.post("/login/sso", data={"csrf_token": token, "email": email})
            assert missing.status_code == 404
            assert "team's own log-in URL" in text_of(missing)
        # Several teams with the domain and a provider: none is guessed.
        async with db.session(system=True) as session:
            session.add(
                SsoProvider(
                    tenant_id=UUID(other_admin.tenant_id),
                    kind="oidc",
                    name="Globex IdP",
                    config={"issuer": "https://g.example.com", "client_id": "x"},
                )
            )
        await set_policy(db, other_admin.tenant_id, domain="acme.example")
        both = await http.post("/login/sso", data={"csrf_token": token, "email": "a@acme.example"})
        assert both.status_code == 404
        # Without a slug the page is the one by tenant id.
        await set_policy(db, admin.tenant_id, login_slug=None, domain="solo.example")
        solo = await http.post("/login/sso", data={"csrf_token": token, "email": "a@solo.example"})
        assert solo.headers["location"] == f"/login/sso/{admin.tenant_id}"


async def test_members_cannot_open_sso_settings(client: httpx.AsyncClient, admin: Account) -> None:
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, developer) as http:
        page = await http.get("/settings/sso")
        assert page.status_code == 403
        settings_page = await http.get("/settings")
        assert 'href="/settings/sso"' not in settings_page.text


async def test_password_log_in_page_under_required_sso(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    developer = await add_member(client, admin, "developer")
    await set_policy(
        db,
        admin.tenant_id,
        sso_required=True,
        sso_break_glass_profile_id=UUID(admin.user_id),
        login_slug="acme-pw",
    )
    async with browser_client(client, None) as http:
        token = await csrf_token(http, "/login")
        refused = await http.post(
            "/login",
            data={"csrf_token": token, "email": developer.email, "password": developer.password},
        )
        assert refused.status_code == 403
        assert "requires single sign-on" in text_of(refused)
        assert "/login/t/acme-pw" in text_of(refused)
        glass = await http.post(
            "/login", data={"csrf_token": token, "email": admin.email, "password": admin.password}
        )
        assert glass.status_code == 303


async def test_other_teams_providers_and_rules_are_not_found(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    async with db.session(system=True) as session:
        provider = SsoProvider(
            tenant_id=UUID(admin.tenant_id),
            kind="oidc",
            name="Acme IdP",
            config={"issuer": "https://idp.example.com", "client_id": "x"},
        )
        session.add(provider)
        await session.flush()
        rule = SsoRoleRule(tenant_id=provider.tenant_id, position=0, group="eng", role="admin")
        session.add(rule)
        await session.flush()
        provider_id, rule_id = provider.id, rule.id
    async with browser_client(client, other_admin) as http:
        token = await csrf_token(http, "/settings/sso")
        page = await http.get("/settings/sso")
        assert "Acme IdP" not in page.text and "eng" not in page.text
        assert (await http.get(f"/settings/sso/providers/{provider_id}")).status_code == 404
        for path in (
            f"/settings/sso/providers/{provider_id}",
            f"/settings/sso/providers/{provider_id}/delete",
            f"/settings/sso/providers/{provider_id}/test",
            f"/settings/sso/rules/{rule_id}",
            f"/settings/sso/rules/{rule_id}/delete",
            f"/settings/sso/rules/{rule_id}/up",
        ):
            answer = await http.post(
                path, data={"csrf_token": token, "name": "x", "group": "x", "role": "viewer"}
            )
            assert answer.status_code == 404, (path, answer.status_code)
        # A rule of theirs cannot name our provider.
        foreign = await http.post(
            "/settings/sso/rules",
            data={
                "csrf_token": token,
                "group": "x",
                "role": "viewer",
                "provider_id": str(provider_id),
            },
        )
        assert foreign.status_code == 422
    async with db.session(system=True) as session:
        assert await session.get(SsoProvider, provider_id) is not None
        kept = await session.get(SsoRoleRule, rule_id)
        assert kept is not None and kept.group == "eng"
