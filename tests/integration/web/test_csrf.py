"""CSRF: every unsafe request of the web UI needs the token bound to its session."""

from __future__ import annotations

import httpx

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.web.csrf import CSRF_COOKIE
from tests.support.api import Account, signup
from tests.support.browser_http import browser_client, csrf_token


async def test_form_post_without_token_is_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        await csrf_token(http)
        response = await http.post("/settings/tokens", data={"name": "ci"})
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]
        assert "reload the page" in response.text
        listed = await client.get("/api/v1/auth/tokens", headers=admin.headers)
        assert listed.json() == []


async def test_wrong_token_and_header_only_attacks_are_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http)
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert (
            await http.post("/settings/tokens", data={"name": "x", "csrf_token": forged})
        ).status_code == 403
        assert (
            await http.post(
                "/settings/tokens", data={"name": "x"}, headers={"X-CSRF-Token": forged}
            )
        ).status_code == 403
        # The same request with the real token works: the refusal was about the token alone.
        ok = await http.post("/settings/tokens", data={"name": "x", "csrf_token": token})
        assert ok.status_code == 201
        ok = await http.post(
            "/settings/tokens", data={"name": "y"}, headers={"X-CSRF-Token": token}
        )
        assert ok.status_code == 201


async def test_token_of_another_session_is_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    other = await signup(client, tenant_name="Other")
    async with browser_client(client, other) as attacker:
        stolen = await csrf_token(attacker)
    async with browser_client(client, admin) as http:
        await csrf_token(http)
        # Even with the attacker's token planted in both cookie and form, the binding fails.
        http.cookies.delete(CSRF_COOKIE)
        http.cookies.set(CSRF_COOKIE, stolen)
        response = await http.post("/settings/tokens", data={"name": "x", "csrf_token": stolen})
        assert response.status_code == 403
        assert "session changed" in response.text


async def test_log_in_form_needs_the_token_too(client: httpx.AsyncClient, admin: Account) -> None:
    async with browser_client(client, None) as http:
        response = await http.post(
            "/login", data={"email": admin.email, "password": admin.password}
        )
        assert response.status_code == 403
        assert "shipyard_session" not in http.cookies
        token = await csrf_token(http, "/login")
        response = await http.post(
            "/login", data={"email": admin.email, "password": admin.password, "csrf_token": token}
        )
        assert response.status_code == 303
        assert http.cookies.get("shipyard_session")
        # A logged-in session gets a fresh token: the anonymous one no longer counts.
        response = await http.post("/settings/tokens", data={"name": "x", "csrf_token": token})
        assert response.status_code == 403


async def test_api_ignores_the_session_cookie_for_writes(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, admin) as http:
        # Reading with the cookie works (the browser's log stream needs it) ...
        assert (await http.get("/api/v1/me")).status_code == 200
        # ... writing does not: a cookie alone cannot drive the API from another site.
        response = await http.post("/api/v1/auth/tokens", json={"name": "sneaky"})
        assert response.status_code == 401


async def test_cookies_are_httponly_lax_and_secure_over_https(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with browser_client(client, None) as http:
        response = await http.get("https://testserver/login")
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{CSRF_COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" in cookie
        token = await csrf_token(http, "https://testserver/login")
        response = await http.post(
            "https://testserver/login",
            data={"email": admin.email, "password": admin.password, "csrf_token": token},
        )
        assert response.status_code == 303
        session = next(
            value
            for value in response.headers.get_list("set-cookie")
            if value.startswith("shipyard_session=")
        )
        assert "HttpOnly" in session and "SameSite=lax" in session and "Secure" in session
        plain = await http.get("http://testserver/login")
        assert "Secure" not in plain.headers.get("set-cookie", "")


async def test_secure_cookies_setting_marks_cookies_secure_over_plain_http(
    db: Database, settings: Settings, admin: Account
) -> None:
    from shipyard.api import create_app
    from shipyard.runtime import build_runtime, close_runtime

    runtime = build_runtime(settings.model_copy(update={"secure_cookies": True}), db=db)
    app = create_app(runtime=runtime)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            response = await http.get("/login")
            assert "Secure" in response.headers["set-cookie"]
    finally:
        await close_runtime(runtime)
