"""OAuth 2 connections: applications, start, callback, state checks, and token refresh."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
from sqlalchemy import text, update

from shipyard.config import Settings
from shipyard.crypto import load_keyring
from shipyard.db import Database
from shipyard.git.models import GitProvider
from shipyard.git.oauth_state import sign_state
from shipyard.git.tokens import ProviderTokenSource
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.integration.git.helpers import Fake, one_audit_row, provider_row, run_sync
from tests.support.api import Account, add_member, error_fields


@pytest.fixture(params=["github", "gitlab", "gitea"])
def provider_kind(request: pytest.FixtureRequest) -> tuple[str, Fake]:
    fake: Fake = request.getfixturevalue(f"fake_{request.param}")
    return request.param, fake


async def register_app(
    client: httpx.AsyncClient, account: Account, kind: str, fake: Fake
) -> tuple[dict[str, Any], str]:
    client_id, secret = fake.forge.add_oauth_client()
    response = await client.post(
        "/api/v1/git-oauth-apps",
        headers=account.headers,
        json={
            "type": kind,
            "server_url": fake.server_url,
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 201, response.text
    return response.json(), secret


async def consent(
    client: httpx.AsyncClient, account: Account, kind: str, fake: Fake, login: str, **params: str
) -> httpx.URL:
    """Start, consent at the fake as ``login``, and return the callback URL it redirects to."""
    start = await client.get(
        f"/api/v1/git-providers/oauth/{kind}/start",
        headers=account.headers,
        params={"server_url": fake.server_url, **params},
    )
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        page = await browser.get(start.headers["location"], headers={"X-Fake-Login": login})
    assert page.status_code == 302, page.text
    return httpx.URL(page.headers["location"])


async def follow_callback(client: httpx.AsyncClient, callback: httpx.URL) -> httpx.Response:
    # The browser arrives without any Shipyard credentials: the signed state says who asked.
    return await client.get(callback.path, params=dict(callback.params))


async def test_oauth_app_crud_keeps_the_client_secret_secret(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitlab: FakeGitLab
) -> None:
    app, secret = await register_app(client, admin, "gitlab", fake_gitlab)
    assert app["has_client_secret"] is True
    assert app["server_url"] == fake_gitlab.server_url
    assert app["redirect_uri"].endswith("/api/v1/git-providers/oauth/gitlab/callback")
    assert "client_secret" not in app
    listed = await client.get("/api/v1/git-oauth-apps", headers=admin.headers)
    assert [a["id"] for a in listed.json()] == [app["id"]]
    assert secret not in listed.text
    async with db.session(system=True) as session:
        stored = await session.scalar(
            text("SELECT client_secret FROM git_oauth_apps WHERE id = :id"), {"id": app["id"]}
        )
    assert stored and secret not in stored
    duplicate = await client.post(
        "/api/v1/git-oauth-apps",
        headers=admin.headers,
        json={
            "type": "gitlab",
            "server_url": fake_gitlab.server_url + "/",
            "client_id": "x",
            "client_secret": "y",
        },
    )
    assert duplicate.status_code == 409
    patched = await client.patch(
        f"/api/v1/git-oauth-apps/{app['id']}", headers=admin.headers, json={"client_id": "new"}
    )
    assert patched.status_code == 200 and patched.json()["client_id"] == "new"
    bad = await client.post(
        "/api/v1/git-oauth-apps",
        headers=admin.headers,
        json={"type": "gitea", "client_id": "x", "client_secret": "y"},
    )
    assert bad.status_code == 422 and error_fields(bad) == ["server_url"]
    empty = await client.post(
        "/api/v1/git-oauth-apps",
        headers=admin.headers,
        json={"type": "github", "client_id": "", "client_secret": "y"},
    )
    assert empty.status_code == 422 and error_fields(empty) == ["client_id"]
    deleted = await client.delete(f"/api/v1/git-oauth-apps/{app['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/v1/git-oauth-apps", headers=admin.headers)).json() == []


async def test_oauth_apps_belong_to_their_tenant_and_admins(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, fake_github: FakeGitHub
) -> None:
    app, _ = await register_app(client, admin, "github", fake_github)
    url = f"/api/v1/git-oauth-apps/{app['id']}"
    assert (await client.get(url, headers=other_admin.headers)).status_code == 404
    assert (await client.delete(url, headers=other_admin.headers)).status_code == 404
    assert (await client.get("/api/v1/git-oauth-apps", headers=other_admin.headers)).json() == []
    developer = await add_member(client, admin, "developer")
    assert (await client.get(url, headers=developer.headers)).status_code == 403
    patched = await client.patch(url, headers=developer.headers, json={"client_id": "x"})
    assert patched.status_code == 403


async def test_connecting_by_oauth_stores_encrypted_tokens_with_expiry(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    provider_kind: tuple[str, Fake],
) -> None:
    kind, fake = provider_kind
    fake.forge.add_user("linus", "Linus T")
    fake.forge.add_many(5, owner="linus")
    app, _ = await register_app(client, admin, kind, fake)
    start = await client.get(
        f"/api/v1/git-providers/oauth/{kind}/start",
        headers=admin.headers,
        params={"server_url": fake.server_url},
    )
    assert start.status_code == 302
    location = urlsplit(start.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}" == fake.server_url
    assert location.path.endswith("/oauth/authorize")
    assert query["client_id"] == [app["client_id"]]
    assert query["redirect_uri"] == [app["redirect_uri"]]
    assert query["response_type"] == ["code"]
    assert query["state"][0].count(".") == 1
    # The scopes let Shipyard register a template's webhook on the repository later on.
    hook_scope = {"gitlab": "api", "gitea": "write:repository"}.get(kind)
    if hook_scope is not None:
        assert hook_scope in query["scope"][0].split(), query["scope"]
    callback = await consent(client, admin, kind, fake, "linus")
    response = await follow_callback(client, callback)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "linus"
    assert body["display_name"] == "Linus T"
    assert body["is_configured"] is True
    assert body["has_access_token"] is True
    assert body["has_refresh_token"] is True
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=50) < expires - datetime.now(UTC) < timedelta(minutes=70)
    async with db.session(system=True) as session:
        raw = (
            await session.execute(
                text("SELECT access_token, refresh_token FROM git_providers WHERE id = :id"),
                {"id": body["id"]},
            )
        ).one()
    stored = await provider_row(db, admin, body["id"])
    assert stored.access_token in fake.forge.tokens
    assert stored.access_token not in raw[0] and stored.refresh_token not in raw[1]
    assert stored.refresh_token is not None
    assert stored.refresh_token not in response.text
    result = await run_sync(db, settings, admin, body["id"])
    assert result.status == "synced" and result.repositories == 5
    # The browser came back without credentials: the person who started is the actor.
    audited = await one_audit_row(db, "git_provider.create", admin)
    assert audited.resource_id == UUID(body["id"])
    assert audited.details == {"type": kind, "name": "linus", "via": "oauth"}
    assert stored.access_token not in str(audited.details)


async def test_callback_redirects_back_into_the_site_when_asked(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitea: Fake
) -> None:
    fake_gitea.forge.add_user("gitty")
    await register_app(client, admin, "gitea", fake_gitea)
    callback = await consent(
        client, admin, "gitea", fake_gitea, "gitty", redirect_to="/settings/git?tab=providers"
    )
    response = await follow_callback(client, callback)
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert target.path == "/settings/git"
    query = parse_qs(target.query)
    assert query["tab"] == ["providers"]
    providers = (await client.get("/api/v1/git-providers", headers=admin.headers)).json()["items"]
    assert query["provider_id"] == [providers[0]["id"]]
    # The web page's way in (it starts through the API and asks to come back) is audited alike.
    audited = await one_audit_row(db, "git_provider.create", admin)
    assert str(audited.resource_id) == providers[0]["id"]
    for outside in ("https://evil.example/", "//evil.example/x", "settings"):
        refused = await client.get(
            "/api/v1/git-providers/oauth/gitea/start",
            headers=admin.headers,
            params={"server_url": fake_gitea.server_url, "redirect_to": outside},
        )
        assert refused.status_code == 422
        assert error_fields(refused) == ["redirect_to"]


async def test_a_replayed_state_is_refused(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub
) -> None:
    fake_github.forge.add_user("octo")
    await register_app(client, admin, "github", fake_github)
    callback = await consent(client, admin, "github", fake_github, "octo")
    first = await follow_callback(client, callback)
    assert first.status_code == 201
    replay = await follow_callback(client, callback)
    assert replay.status_code == 422
    assert error_fields(replay) == ["state"]
    assert "already used" in replay.json()["error"]["message"]


async def test_bad_states_are_refused_before_any_code_exchange(
    client: httpx.AsyncClient, admin: Account, settings: Settings, fake_github: FakeGitHub
) -> None:
    fake_github.forge.add_user("octo")
    await register_app(client, admin, "github", fake_github)
    callback = await consent(client, admin, "github", fake_github, "octo")
    params = dict(callback.params)
    body, signature = params["state"].split(".")
    expired = sign_state(
        load_keyring(settings),
        tenant_id=UUID(admin.tenant_id),
        user_id=UUID(admin.user_id),
        provider_type="github",
        server_url=fake_github.server_url,
        provider_id=None,
        redirect_to=None,
        ttl_seconds=-5,
    )
    cases = {
        "tampered": (f"{body}x.{signature}", "signature"),
        "garbage": ("not-a-state", "malformed"),
        "expired": (expired, "expired"),
        "other keys": (
            sign_state(
                type(load_keyring(settings))(["o5S8QGJ2hwZBNRwYu0EZA4MIcWL3wVzRVVsoGKKDYiw="]),
                tenant_id=UUID(admin.tenant_id),
                user_id=UUID(admin.user_id),
                provider_type="github",
                server_url=fake_github.server_url,
                provider_id=None,
                redirect_to=None,
                ttl_seconds=600,
            ),
            "signature",
        ),
        "missing": ("", "malformed"),
    }
    before = len(fake_github.forge.requests)
    for name, (state, message) in cases.items():
        response = await client.get(callback.path, params={"code": params["code"], "state": state})
        assert response.status_code == 422, name
        assert error_fields(response) == ["state"], name
        assert message in response.json()["error"]["message"], name
    wrong_type = await client.get("/api/v1/git-providers/oauth/gitlab/callback", params=params)
    assert wrong_type.status_code == 422 and error_fields(wrong_type) == ["state"]
    # No code was sent to the token endpoint for any of them.
    assert not [r for r in fake_github.forge.requests[before:] if "access_token" in r.path]
    # The genuine state still works once.
    assert (await follow_callback(client, callback)).status_code == 201


async def test_denied_consent_and_bad_codes_name_the_code(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub
) -> None:
    fake_github.forge.add_user("octo")
    await register_app(client, admin, "github", fake_github)
    start = await client.get(
        "/api/v1/git-providers/oauth/github/start",
        headers=admin.headers,
        params={"server_url": fake_github.server_url},
    )
    async with httpx.AsyncClient() as browser:
        denied = await browser.get(
            start.headers["location"], headers={"X-Fake-Login": "octo", "X-Fake-Deny": "1"}
        )
    response = await follow_callback(client, httpx.URL(denied.headers["location"]))
    assert response.status_code == 422
    assert error_fields(response) == ["code"]
    assert "denied your application" in response.json()["error"]["message"]
    callback = await consent(client, admin, "github", fake_github, "octo")
    forged = await client.get(
        callback.path, params={"code": "forged-code", "state": callback.params["state"]}
    )
    assert forged.status_code == 422
    assert error_fields(forged) == ["code"]
    assert "authorization grant is invalid" in forged.json()["error"]["message"]
    assert (await client.get("/api/v1/git-providers", headers=admin.headers)).json()["items"] == []


async def test_start_needs_a_configured_application(
    client: httpx.AsyncClient, admin: Account, fake_gitlab: FakeGitLab
) -> None:
    response = await client.get(
        "/api/v1/git-providers/oauth/gitlab/start",
        headers=admin.headers,
        params={"server_url": fake_gitlab.server_url},
    )
    assert response.status_code == 422
    assert error_fields(response) == ["server_url"]
    unknown = await client.get("/api/v1/git-providers/oauth/bitbucket/start", headers=admin.headers)
    assert unknown.status_code == 422 and error_fields(unknown) == ["provider_type"]


async def test_a_member_demoted_before_the_callback_cannot_finish(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub
) -> None:
    fake_github.forge.add_user("octo")
    await register_app(client, admin, "github", fake_github)
    second_admin = await add_member(client, admin, "admin")
    callback = await consent(client, second_admin, "github", fake_github, "octo")
    demoted = await client.patch(
        f"/api/v1/tenant/members/{second_admin.user_id}",
        headers=admin.headers,
        json={"role": "viewer"},
    )
    assert demoted.status_code == 200, demoted.text
    response = await follow_callback(client, callback)
    assert response.status_code == 422
    assert error_fields(response) == ["state"]


async def oauth_provider(
    client: httpx.AsyncClient, admin: Account, kind: str, fake: Fake
) -> dict[str, Any]:
    fake.forge.add_user("ada")
    fake.forge.add_many(7, owner="ada")
    await register_app(client, admin, kind, fake)
    callback = await consent(client, admin, kind, fake, "ada")
    response = await follow_callback(client, callback)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def token_requests(fake: Fake) -> list[Any]:
    return [r for r in fake.forge.requests if r.path.endswith(("/access_token", "/oauth/token"))]


async def test_an_expired_token_is_refreshed_before_use(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    provider_kind: tuple[str, Fake],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind, fake = provider_kind
    caplog.set_level(logging.DEBUG)
    provider = await oauth_provider(client, admin, kind, fake)
    old = await provider_row(db, admin, provider["id"])
    fake.forge.expire(old.access_token or "")
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        await session.execute(
            update(GitProvider)
            .where(GitProvider.id == UUID(provider["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    refreshes_before = len(token_requests(fake))
    result = await run_sync(db, settings, admin, provider["id"])
    assert result.status == "synced", result
    assert len(token_requests(fake)) == refreshes_before + 1
    new = await provider_row(db, admin, provider["id"])
    assert new.access_token != old.access_token
    assert new.expires_at is not None and new.expires_at > datetime.now(UTC)
    if kind == "gitlab":
        # GitLab rotates refresh tokens: the new one was saved.
        assert new.refresh_token != old.refresh_token
    secrets = [old.access_token, old.refresh_token, new.access_token, new.refresh_token]
    assert all(
        secret not in record.getMessage()
        for record in caplog.records
        for secret in secrets
        if secret
    )
    # The expired token was never sent: the refresh came first.
    assert old.access_token is not None
    assert not [
        r
        for r in fake.forge.requests
        if r.authorization and old.access_token in r.authorization and r.status == 401
    ]


async def test_a_401_triggers_a_refresh_and_one_retry(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_gitlab: FakeGitLab,
) -> None:
    provider = await oauth_provider(client, admin, "gitlab", fake_gitlab)
    old = await provider_row(db, admin, provider["id"])
    # Revoked early at the provider while Shipyard still thinks it valid.
    fake_gitlab.forge.expire(old.access_token or "")
    result = await run_sync(db, settings, admin, provider["id"])
    assert result.status == "synced", result
    refused = [r for r in fake_gitlab.forge.requests if r.status == 401]
    assert len(refused) == 1
    assert (await provider_row(db, admin, provider["id"])).access_token != old.access_token


async def test_a_refused_refresh_marks_the_provider_unconfigured_with_the_reason(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    provider_kind: tuple[str, Fake],
) -> None:
    kind, fake = provider_kind
    provider = await oauth_provider(client, admin, kind, fake)
    await run_sync(db, settings, admin, provider["id"])
    old = await provider_row(db, admin, provider["id"])
    fake.forge.expire(old.access_token or "")
    fake.forge.revoke_refresh_tokens()
    result = await run_sync(db, settings, admin, provider["id"])
    assert result.status == "error"
    shown = (
        await client.get(f"/api/v1/git-providers/{provider['id']}", headers=admin.headers)
    ).json()
    assert shown["is_configured"] is False
    assert shown["sync_status"] == "error"
    assert "refresh token is invalid or was revoked" in shown["error"]
    # The repositories of the last good sync stay.
    assert shown["repository_count"] == 7


async def test_reconnecting_by_oauth_restores_the_same_provider(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_gitea: Fake,
) -> None:
    provider = await oauth_provider(client, admin, "gitea", fake_gitea)
    old = await provider_row(db, admin, provider["id"])
    fake_gitea.forge.expire(old.access_token or "")
    fake_gitea.forge.revoke_refresh_tokens()
    await run_sync(db, settings, admin, provider["id"])
    assert (await provider_row(db, admin, provider["id"])).is_configured is False
    callback = await consent(client, admin, "gitea", fake_gitea, "ada", provider_id=provider["id"])
    response = await follow_callback(client, callback)
    assert response.status_code == 201
    assert response.json()["id"] == provider["id"]
    assert response.json()["is_configured"] is True
    assert response.json()["error"] is None
    listed = (await client.get("/api/v1/git-providers", headers=admin.headers)).json()["items"]
    assert len(listed) == 1
    reconnected = await one_audit_row(db, "git_provider.reconnect", admin)
    assert str(reconnected.resource_id) == provider["id"]


async def test_concurrent_refreshes_call_the_provider_once(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_gitlab: FakeGitLab,
) -> None:
    provider = await oauth_provider(client, admin, "gitlab", fake_gitlab)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        await session.execute(
            update(GitProvider)
            .where(GitProvider.id == UUID(provider["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    row = await provider_row(db, admin, provider["id"])
    before = len(token_requests(fake_gitlab))
    async with httpx.AsyncClient() as http:
        # Two sources as two requests or workers would hold them: the row lock serialises them.
        sources = [
            ProviderTokenSource(db=db, settings=settings, http=http, provider=row) for _ in range(2)
        ]
        tokens = await asyncio.gather(*(source.token() for source in sources))
    assert tokens[0] == tokens[1]
    assert len(token_requests(fake_gitlab)) == before + 1
    assert (await provider_row(db, admin, provider["id"])).access_token == tokens[0]
