"""Signing in with OpenID Connect in a real browser, through the real oidc-provider: from the
team's log-in page to the provider's log-in form and back, signed in with the role the groups
map to; a group change at the provider changes the role at the next sign-in."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support import canary
from tests.support.api import unique_email
from tests.support.browser import LiveServer, api_signup
from tests.support.oidc_provider import (
    OidcAccount,
    OidcClient,
    OidcProvider,
    start_provider,
    stop_provider,
)

CLIENT_SECRET = canary.remember("e2e-oidc-client-secret-7c1d", "OIDC client secret")


@pytest.fixture(scope="module")
def idp(live_server: LiveServer) -> Iterator[OidcProvider]:
    provider = start_provider(
        clients=[
            OidcClient("shipyard-e2e", CLIENT_SECRET, [f"{live_server.url}/login/oidc/callback"])
        ],
        accounts={},
    )
    try:
        yield provider
    finally:
        stop_provider(provider)


async def sign_in_at_the_provider(page: Page, login: str) -> None:
    """The provider's own log-in page (oidc-provider's development form: any password)."""
    await expect(page.locator("input[name=login]")).to_be_visible()
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill("whatever the IdP checks")
    await page.get_by_role("button", name="Sign-in").click()


async def test_sign_in_with_the_teams_provider_and_role_follows_groups(
    page: Page, live_server: LiveServer, idp: OidcProvider
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Harbour SSO")
    slug = f"harbour-{admin.tenant_id[:8]}"
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as api:
        created = await api.post(
            "/api/v1/sso/providers",
            json={
                "kind": "oidc",
                "name": "Harbour Login",
                "config": {
                    "issuer": idp.issuer,
                    "client_id": "shipyard-e2e",
                    "scopes": ["openid", "email", "profile", "groups"],
                },
                "secret": CLIENT_SECRET,
            },
        )
        assert created.status_code == 201, created.text
        for group, role in (("engineering", "developer"), ("platform", "admin")):
            rule = await api.post("/api/v1/sso/rules", json={"group": group, "role": role})
            assert rule.status_code == 201, rule.text
        policy = await api.patch("/api/v1/sso/settings", json={"login_slug": slug})
        assert policy.status_code == 200, policy.text

    email = unique_email("sso-e2e")
    idp.set_account("grace", OidcAccount(email, "Grace Hopper", ["engineering"]))

    await page.goto(f"/login/t/{slug}")
    await page.get_by_role("link", name="Sign in with Harbour Login").click()
    await sign_in_at_the_provider(page, "grace")
    await expect(page).to_have_url("/")
    await expect(page.locator(".who")).to_contain_text(email)
    await expect(page.locator("[data-role]")).to_have_text("developer")
    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    assert "shipyard_session" in cookies
    assert "shipyard_oidc" not in cookies  # the binding cookie is gone once used

    # Moved to the platform group at the provider: log out, sign in again, now an admin.
    idp.set_account("grace", OidcAccount(email, "Grace Hopper", ["platform", "engineering"]))
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url("/login")
    await page.goto(f"/login/t/{slug}")
    await page.get_by_role("link", name="Sign in with Harbour Login").click()
    # The provider remembers its own session: it may send the browser straight back.
    if page.url.startswith(idp.issuer):
        await sign_in_at_the_provider(page, "grace")
    await expect(page).to_have_url("/")
    await expect(page.locator("[data-role]")).to_have_text("admin")


async def test_a_person_in_no_mapped_group_sees_why(
    page: Page, live_server: LiveServer, idp: OidcProvider
) -> None:
    admin = await api_signup(live_server.url, tenant_name="Quay SSO")
    async with httpx.AsyncClient(base_url=live_server.url, headers=admin.headers) as api:
        created = await api.post(
            "/api/v1/sso/providers",
            json={
                "kind": "oidc",
                "name": "Quay Login",
                "config": {
                    "issuer": idp.issuer,
                    "client_id": "shipyard-e2e",
                    "scopes": ["openid", "email", "profile", "groups"],
                },
                "secret": CLIENT_SECRET,
            },
        )
        assert created.status_code == 201, created.text
        provider_id = created.json()["id"]
        rule = await api.post("/api/v1/sso/rules", json={"group": "engineering", "role": "viewer"})
        assert rule.status_code == 201, rule.text
    idp.set_account("temp", OidcAccount(unique_email("temp"), "Tem Porary", ["visitors"]))

    await page.goto(f"/login/oidc/{provider_id}")
    await sign_in_at_the_provider(page, "temp")
    await expect(page.locator("#sso-refused")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("visitors")
    names = {cookie["name"] for cookie in await page.context.cookies()}
    assert "shipyard_session" not in names
