"""Signing in with OpenID Connect through the web routes (``/login/oidc/...``), the flows and
the real oidc-provider: the member made with the mapped role, the role following the groups,
the state single use and bound to the browser, the provider's refusal, and tenant isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from shipyard.accounts.models import Profile, User
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import Runtime
from shipyard.sso.login_states import save_login_state, take_login_state
from shipyard.sso.models import SsoLoginState, SsoProvider
from shipyard.sso.oidc_flows import redirect_uri
from tests.integration.sso.core.helpers import entries
from tests.integration.sso.oidc.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    OTHER_CLIENT_SECRET,
    provider_config,
)
from tests.support.api import Account, unique_email
from tests.support.apps import app_for
from tests.support.oidc_provider import (
    OidcAccount,
    OidcProvider,
    callback_params,
    sign_in_at_provider,
)

Browser = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser(runtime: Runtime) -> Browser:
    """A fresh browser (its own cookie jar) on the web app (the test's ``client``'s app)."""
    app = app_for(runtime)

    @asynccontextmanager
    async def open_browser(base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url
        ) as client:
            yield client

    return open_browser


async def add_oidc_provider(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    *,
    client_id: str = CLIENT_ID,
    secret: str | None = CLIENT_SECRET,
    name: str = "Corp SSO",
    settings: dict[str, object] | None = None,
) -> str:
    """Add the test provider; ``settings`` adds to (or replaces) its stored config."""
    created = await client.post(
        "/api/v1/sso/providers",
        headers=admin.headers,
        json={
            "kind": "oidc",
            "name": name,
            "config": {**provider_config(idp, client_id), **(settings or {})},
            "secret": secret,
        },
    )
    assert created.status_code == 201, created.text
    assert "secret" not in created.text.replace("has_secret", "")
    return str(created.json()["id"])


async def add_rule(client: httpx.AsyncClient, admin: Account, group: str, role: str) -> None:
    created = await client.post(
        "/api/v1/sso/rules", headers=admin.headers, json={"group": group, "role": role}
    )
    assert created.status_code == 201, created.text


async def leave_for_idp(browser: httpx.AsyncClient, provider_id: str, next: str = "/") -> str:
    """Click "Sign in with ...": the identity provider's URL the browser is sent to."""
    start = await browser.get(f"/login/oidc/{provider_id}", params={"next": next})
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    assert not location.startswith("/")
    return location


async def come_back(browser: httpx.AsyncClient, callback_url: str) -> httpx.Response:
    parts = urlsplit(callback_url)
    return await browser.get(f"{parts.path}?{parts.query}")


async def sign_in(
    browser: httpx.AsyncClient,
    provider_id: str,
    settings: Settings,
    *,
    login: str,
    next: str = "/",
    abort: bool = False,
) -> httpx.Response:
    """The whole round trip in one browser: our start, the provider's log-in page, our callback."""
    authorization_url = await leave_for_idp(browser, provider_id, next)
    callback = await sign_in_at_provider(
        authorization_url, login=login, redirect_uri=redirect_uri(settings), abort=abort
    )
    return await come_back(browser, callback)


async def me(browser: httpx.AsyncClient) -> dict[str, Any]:
    answer = await browser.get("/api/v1/me")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_sign_in_makes_the_member_with_the_mapped_role_and_follows_group_changes(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
    db: Database,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    await add_rule(client, admin, "ops", "admin")
    email = unique_email("jit")
    idp.set_account("jit", OidcAccount(email, "Jo In-Time", ["devs"]))

    async with browser() as web:
        start = await web.get(f"/login/oidc/{provider_id}", params={"next": "/hosts"})
        assert start.status_code == 303
        binding = start.headers["set-cookie"].lower()
        assert binding.startswith("shipyard_oidc=")
        for attribute in ("httponly", "samesite=lax", "path=/login/oidc", "max-age=600"):
            assert attribute in binding
        assert "secure" not in binding  # plain http here; https requests get Secure
        callback = await sign_in_at_provider(
            start.headers["location"], login="jit", redirect_uri=redirect_uri(settings)
        )
        assert callback_params(callback)["iss"] == idp.issuer
        landed = await come_back(web, callback)
        assert landed.status_code == 303, landed.text
        assert landed.headers["location"] == "/hosts"
        cookies = landed.headers.get_list("set-cookie")
        assert any(cookie.startswith("shipyard_session=") for cookie in cookies)
        # The binding cookie is forgotten once used.
        assert any(cookie.startswith('shipyard_oidc=""') for cookie in cookies)
        who = await me(web)
        assert (who["email"], who["role"], str(who["tenant_id"])) == (
            email,
            "developer",
            admin.tenant_id,
        )

    # Moved to the ops group at the provider: the next sign-in makes them an admin.
    idp.set_account("jit", OidcAccount(email, "Jo In-Time", ["ops", "devs"]))
    async with browser() as web:
        landed = await sign_in(web, provider_id, settings, login="jit")
        assert landed.status_code == 303, landed.text
        assert (await me(web))["role"] == "admin"
    changes = await entries(db, admin.tenant_id, "sso.role_change")
    assert len(changes) == 1
    logins = await entries(db, admin.tenant_id, "sso.login")
    assert [entry.outcome for entry in logins] == ["success", "success"]
    async with db.session(system=True) as session:
        # Nothing of the round trip is left behind.
        assert await session.scalar(select(func.count()).select_from(SsoLoginState)) == 0


async def test_a_person_whose_groups_map_to_no_role_is_refused_with_the_reason(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
    db: Database,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    email = unique_email("contractor")
    idp.set_account("carl", OidcAccount(email, "Carl Contractor", ["contractors"]))
    async with browser() as web:
        refused = await sign_in(web, provider_id, settings, login="carl")
        assert refused.status_code == 403
        assert "contractors" in refused.text
        assert "shipyard_session=" not in refused.headers.get("set-cookie", "")
        assert (await web.get("/api/v1/me")).status_code == 401
    async with db.session(system=True) as session:
        assert await session.scalar(select(User).where(User.email == email)) is None


async def test_the_state_is_single_use_and_bound_to_the_browser_that_started(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
    db: Database,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    async with browser() as victim, browser() as attacker:
        # The attacker starts a sign-in and lures the victim's browser to its callback link
        # (login CSRF): the victim's browser holds no matching binding cookie.
        lure = await sign_in_at_provider(
            await leave_for_idp(attacker, provider_id),
            login="alice",
            redirect_uri=redirect_uri(settings),
        )
        refused = await come_back(victim, lure)
        assert refused.status_code == 401
        assert "another browser" in refused.text
        # Used up: not even the browser that started it can finish it now.
        again = await come_back(attacker, lure)
        assert again.status_code == 401
        assert "expired or was already used" in again.text

        # A finished sign-in's return link cannot be replayed.
        authorization_url = await leave_for_idp(victim, provider_id)
        callback = await sign_in_at_provider(
            authorization_url, login="alice", redirect_uri=redirect_uri(settings)
        )
        assert (await come_back(victim, callback)).status_code == 303
        replay = await come_back(victim, callback)
        assert replay.status_code == 401
        assert "expired or was already used" in replay.text
        # No state at all, or one never issued.
        assert (await victim.get("/login/oidc/callback?code=x")).status_code == 401
        assert (await victim.get("/login/oidc/callback?code=x&state=forged")).status_code == 401
    failures = [
        e for e in await entries(db, admin.tenant_id, "sso.login") if e.outcome != "success"
    ]
    assert [entry.outcome for entry in failures] == ["failure"]
    assert "another browser" in str(failures[0].details)


async def test_the_providers_refusal_shows_a_page_that_says_so(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp, name="Corp Login")
    async with browser() as web:
        refused = await sign_in(web, provider_id, settings, login="alice", abort=True)
        assert refused.status_code == 403
        assert "Corp Login did not let you sign in (access_denied)" in refused.text
        # An error code the provider made up is not echoed.
        authorization_url = await leave_for_idp(web, provider_id)
        state = callback_params(authorization_url)["state"]
        odd = await web.get(
            "/login/oidc/callback",
            params={"state": state, "error": "<b>call 555-0100</b>", "error_description": "x"},
        )
        assert odd.status_code == 401
        assert "555-0100" not in odd.text and "an unknown error" in odd.text


async def test_the_return_leg_is_checked_against_the_provider_it_went_to(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    async with browser() as web:
        callback = await sign_in_at_provider(
            await leave_for_idp(web, provider_id),
            login="alice",
            redirect_uri=redirect_uri(settings),
        )
        mixed_up = callback.replace("iss=http%3A%2F%2F127.0.0.1", "iss=http%3A%2F%2Fevil.example")
        assert mixed_up != callback
        refused = await come_back(web, mixed_up)
        assert refused.status_code == 401
        assert "another identity provider" in refused.text


async def test_start_refuses_unknown_and_foreign_targets(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    async with browser() as web:
        assert (await web.get(f"/login/oidc/{uuid4()}")).status_code == 404
        assert (await web.get("/login/oidc/not-a-provider")).status_code == 422
        # ``next`` never leads off the site.
        landed = await sign_in(
            web, provider_id, settings, login="alice", next="https://evil.example/x"
        )
        assert landed.status_code == 303 and landed.headers["location"] == "/"
    # Over https the binding cookie is Secure.
    async with browser("https://testserver") as web:
        start = await web.get(f"/login/oidc/{provider_id}")
        assert start.status_code == 303
        assert "secure" in start.headers["set-cookie"].lower()
    disabled = await client.patch(
        f"/api/v1/sso/providers/{provider_id}", headers=admin.headers, json={"enabled": False}
    )
    assert disabled.status_code == 200, disabled.text
    async with browser() as web:
        assert (await web.get(f"/login/oidc/{provider_id}")).status_code == 404


async def test_an_idp_of_one_team_cannot_sign_anyone_into_another(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
    db: Database,
) -> None:
    ours = await add_oidc_provider(client, admin, idp)
    theirs = await add_oidc_provider(
        client, other_admin, idp, client_id=OTHER_CLIENT_ID, secret=OTHER_CLIENT_SECRET
    )
    await add_rule(client, admin, "devs", "admin")
    await add_rule(client, other_admin, "devs", "viewer")

    # The other team's admin, as our provider describes them (same e-mail, even verified).
    idp.set_account("globex", OidcAccount(other_admin.email, "Globex Admin", ["devs"]))
    async with browser() as web:
        refused = await sign_in(web, ours, settings, login="globex")
        assert refused.status_code == 403
        assert (await web.get("/api/v1/me")).status_code == 401
    async with db.session(system=True) as session:
        profile = await session.get(Profile, UUID(other_admin.user_id))
        assert profile is not None
        assert (str(profile.tenant_id), profile.role) == (other_admin.tenant_id, "admin")

    # A return leg stitched from two sign-ins: our state, the other team's code. The code was
    # issued to the other team's client (and PKCE verifier), so our exchange is refused.
    async with browser() as web:
        their_leg = await leave_for_idp(web, theirs)
        # Ours last: the browser's binding cookie is the one of our sign-in.
        our_leg = await leave_for_idp(web, ours)
        our_state = callback_params(our_leg)["state"]
        their_return = await sign_in_at_provider(
            their_leg, login="alice", redirect_uri=redirect_uri(settings)
        )
        stitched = callback_params(their_return) | {"state": our_state}
        refused = await web.get("/login/oidc/callback", params=stitched)
        assert refused.status_code == 401
        assert "refused the sign-in code" in refused.text
        assert (await web.get("/api/v1/me")).status_code == 401

    # Through the other team's provider, alice lands in the other team only, with its role.
    async with browser() as web:
        landed = await sign_in(web, theirs, settings, login="alice")
        assert landed.status_code == 303, landed.text
        who = await me(web)
        assert (str(who["tenant_id"]), who["role"]) == (other_admin.tenant_id, "viewer")
    # ...so our provider can no longer sign alice in here: her e-mail is the other team's.
    async with browser() as web:
        assert (await sign_in(web, ours, settings, login="alice")).status_code == 403


async def test_an_unverified_email_does_not_take_over_an_existing_member(
    client: httpx.AsyncClient,
    admin: Account,
    idp: OidcProvider,
    browser: Browser,
    settings: Settings,
) -> None:
    provider_id = await add_oidc_provider(client, admin, idp)
    await add_rule(client, admin, "devs", "developer")
    idp.set_account(
        "mallory", OidcAccount(admin.email, "Not The Admin", ["devs"], email_verified=False)
    )
    async with browser() as web:
        refused = await sign_in(web, provider_id, settings, login="mallory")
        assert refused.status_code == 403
        assert (await web.get("/api/v1/me")).status_code == 401
    # Vouched for by the provider, the same address links to the existing member.
    idp.set_account("admin-sso", OidcAccount(admin.email, "The Admin", ["devs"]))
    async with browser() as web:
        landed = await sign_in(web, provider_id, settings, login="admin-sso")
        assert landed.status_code == 303, landed.text
        assert str((await me(web))["id"]) == admin.user_id


async def test_login_states_expire_and_are_taken_once(runtime: Runtime, admin: Account) -> None:
    now = runtime.clock.now()
    tenant_id = UUID(admin.tenant_id)
    async with runtime.db.session(system=True) as session:
        row = SsoProvider(tenant_id=tenant_id, kind="oidc", name="States", config={})
        session.add(row)
        await session.flush()
        provider_id = row.id
        for state in ("fresh", "stale"):
            await save_login_state(
                session=session,
                tenant_id=tenant_id,
                provider_id=provider_id,
                state=state,
                browser_secret=f"browser-{state}",
                nonce="n",
                code_verifier="verifier-kept-encrypted",
                next_path="/x",
                now=now,
            )
        stored = await session.scalar(select(SsoLoginState).limit(1))
        assert stored is not None and stored.state_hash not in ("fresh", "stale")
    async with runtime.db.session(system=True) as session:
        taken = await take_login_state(session=session, state="fresh", now=now)
        assert taken is not None
        assert (taken.provider_id, taken.code_verifier, taken.next_path) == (
            provider_id,
            "verifier-kept-encrypted",
            "/x",
        )
        assert await take_login_state(session=session, state="fresh", now=now) is None
        later = now + timedelta(minutes=11)
        assert await take_login_state(session=session, state="stale", now=later) is None
    # Saving purges what expired.
    async with runtime.db.session(system=True) as session:
        await save_login_state(
            session=session,
            tenant_id=tenant_id,
            provider_id=provider_id,
            state="stale-again",
            browser_secret="b",
            nonce="n",
            code_verifier="v",
            next_path="/",
            now=now,
        )
        await save_login_state(
            session=session,
            tenant_id=tenant_id,
            provider_id=provider_id,
            state="newest",
            browser_secret="b",
            nonce="n",
            code_verifier="v",
            next_path="/",
            now=now + timedelta(minutes=11),
        )
        count = await session.scalar(select(func.count()).select_from(SsoLoginState))
        assert count == 1
