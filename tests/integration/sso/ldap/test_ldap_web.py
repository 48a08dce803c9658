"""The LDAP form of a tenant's log-in page (POST /login/ldap/{provider_id}) over plain HTTP."""

from __future__ import annotations

import httpx

from shipyard.web.session import SESSION_COOKIE
from tests.integration.sso.ldap import slapd
from tests.integration.sso.ldap.conftest import MakeProvider
from tests.support import canary
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token


async def post_form(
    http: httpx.AsyncClient, provider_id: object, username: str, password: str, next: str = "/"
) -> httpx.Response:
    token = await csrf_token(http, "/login")
    return await http.post(
        f"/login/ldap/{provider_id}",
        data={"username": username, "password": password, "next": next, "csrf_token": token},
    )


async def test_the_form_signs_in_and_goes_on_to_next(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    async with browser_client(client, None) as http:
        response = await post_form(
            http, provider_id, "bob", slapd_server.passwords["bob"], next="/deployments"
        )

        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/deployments"
        cookie = http.cookies.get(SESSION_COOKIE)
        assert cookie
        canary.remember(cookie, "session cookie")
        home = await http.get("/")
        assert home.status_code == 200, home.headers.get("location")
        assert "bob@example.org" in home.text or "Bob Builder" in home.text


async def test_the_form_never_sends_a_user_to_another_site(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    async with browser_client(client, None) as http:
        response = await post_form(
            http, provider_id, "bob", slapd_server.passwords["bob"], next="https://evil.example/"
        )

    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_the_form_says_why_it_failed_or_refused(
    client: httpx.AsyncClient,
    admin: Account,
    ldap_provider: MakeProvider,
    slapd_server: slapd.Slapd,
) -> None:
    provider_id = await ldap_provider(admin.tenant_id)
    wrong_password = canary.remember("bobs-wrong-guess-42", "a wrong LDAP password")
    async with browser_client(client, None) as http:
        wrong = await post_form(http, provider_id, "bob", wrong_password)
        empty = await post_form(http, provider_id, "bob", "")
        refused = await post_form(http, provider_id, "dave", slapd_server.passwords["dave"])
        missing = await post_form(http, "00000000-0000-0000-0000-000000000007", "bob", "x")

        assert not http.cookies.get(SESSION_COOKIE)

    # A wrong password: the team's log-in page again, the user name kept, the reason shown.
    assert wrong.status_code == 401
    assert 'id="team-login"' in wrong.text
    assert "Wrong user name or password." in wrong.text
    assert 'value="bob"' in wrong.text
    assert empty.status_code == 401
    # Refused: the refusal page says why.
    assert refused.status_code == 403
    assert 'id="sso-refused"' in refused.text
    assert "marketing" in refused.text
    assert missing.status_code == 404
    for page in (wrong, empty, refused, missing):
        assert page.headers["content-type"].startswith("text/html")
        assert wrong_password not in page.text
        assert slapd_server.passwords["dave"] not in page.text
        assert slapd_server.service_password not in page.text
