"""Pages need a session, render errors as pages and never as JSON or a trace."""

from __future__ import annotations

import httpx

from tests.support.api import Account
from tests.support.browser_http import browser_client


async def test_pages_redirect_visitors_to_log_in(client: httpx.AsyncClient) -> None:
    async with browser_client(client, None) as http:
        for path in ("/", "/settings", "/settings/members", "/hosts", "/deployments"):
            response = await http.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login")
        response = await http.get("/hosts?status=online")
        assert response.headers["location"] == "/login?next=%2Fhosts%3Fstatus%3Donline"
        htmx = await http.get("/settings/members", headers={"HX-Request": "true"})
        assert htmx.headers["HX-Redirect"].startswith("/login?next=")


async def test_expired_or_revoked_session_goes_back_to_log_in(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await client.post("/api/v1/auth/logout", headers=admin.headers)
    async with browser_client(client, admin) as http:
        response = await http.get("/")
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        # The log-in page itself still renders for a stale cookie.
        assert (await http.get("/login")).status_code == 200


async def test_malformed_ids_are_a_friendly_422_page(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        response = await http.get("/settings")
        token = response.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        response = await http.post(
            "/settings/members/not-a-uuid/role", data={"role": "viewer", "csrf_token": token}
        )
        assert response.status_code == 422
        assert "text/html" in response.headers["content-type"]
        assert "Please check: member_id." in response.text


async def test_layout_has_skip_link_navigation_and_localisable_times(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        page = (await http.get("/settings/members")).text
        assert '<a class="skip-link" href="#main">' in page
        assert '<main id="main"' in page
        for label in ("Dashboard", "Repositories", "Hosts", "Deployments", "CI/CD", "Settings"):
            assert f">{label}</a>" in page
        assert '<a href="/settings" aria-current="page">Settings</a>' in page
        assert "<time datetime=" in page and "data-local" in page
        assert 'hx-headers=\'{"X-CSRF-Token": "' in page
