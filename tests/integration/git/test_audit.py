"""Every audited git action writes its entry, whether it came through the API or a web page."""

from __future__ import annotations

from uuid import UUID

import httpx

from shipyard.db import Database
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.fixtures.git import MakeGitRepo
from tests.integration.git.helpers import audit_rows, connect, one_audit_row
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token

PROVIDERS_PAGE = "/repositories/providers"


async def test_provider_actions_through_the_api_are_audited(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_github: FakeGitHub
) -> None:
    token = fake_github.forge.add_user("grace")
    provider = await connect(client, admin, "github", fake_github, token)
    created = await one_audit_row(db, "git_provider.create", admin)
    assert created.resource_id == UUID(provider["id"])
    assert created.details == {
        "type": "github",
        "server_url": fake_github.server_url,
        "name": "grace",
    }

    new_token = fake_github.forge.add_user("grace", "Grace")
    base = f"/api/v1/git-providers/{provider['id']}"
    renamed = await client.patch(
        base, headers=admin.headers, json={"display_name": "Work", "access_token": new_token}
    )
    assert renamed.status_code == 200, renamed.text
    updated = await one_audit_row(db, "git_provider.update", admin)
    assert updated.details == {"display_name": "Work", "access_token": "replaced"}
    assert new_token not in str(updated.details)

    synced = await client.post(f"{base}/sync", headers=admin.headers)
    assert synced.status_code == 202, synced.text
    sync = await one_audit_row(db, "git_provider.sync", admin)
    assert sync.resource_id == UUID(provider["id"])
    # The connection already queued its first sync: this request found it waiting.
    assert sync.details == {"queued": False}

    deleted = await client.delete(base, headers=admin.headers)
    assert deleted.status_code == 204
    gone = await one_audit_row(db, "git_provider.delete", admin)
    assert gone.resource_id == UUID(provider["id"])
    assert gone.details == {"type": "github", "name": "grace"}


async def test_provider_actions_through_the_web_pages_are_audited(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitlab: FakeGitLab
) -> None:
    token = fake_gitlab.forge.add_user("linus")
    async with browser_client(client, admin) as http:
        csrf = await csrf_token(http, PROVIDERS_PAGE)
        connected = await http.post(
            PROVIDERS_PAGE,
            data={
                "type": "gitlab",
                "server_url": fake_gitlab.server_url,
                "access_token": token,
                "csrf_token": csrf,
            },
        )
        assert connected.status_code == 303, connected.text
        created = await one_audit_row(db, "git_provider.create", admin)
        assert created.details["name"] == "linus"
        provider_id = created.resource_id

        synced = await http.post(f"{PROVIDERS_PAGE}/{provider_id}/sync", data={"csrf_token": csrf})
        assert synced.status_code == 303
        assert (await one_audit_row(db, "git_provider.sync", admin)).resource_id == provider_id

        removed = await http.post(
            f"{PROVIDERS_PAGE}/{provider_id}/delete", data={"csrf_token": csrf}
        )
        assert removed.status_code == 303
        assert (await one_audit_row(db, "git_provider.delete", admin)).resource_id == provider_id


async def test_a_refused_token_writes_no_audit_entry(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_github: FakeGitHub
) -> None:
    fake_github.forge.add_user("grace")
    async with browser_client(client, admin) as http:
        csrf = await csrf_token(http, PROVIDERS_PAGE)
        refused = await http.post(
            PROVIDERS_PAGE,
            data={
                "type": "github",
                "server_url": fake_github.server_url,
                "access_token": "not-a-token",
                "csrf_token": csrf,
            },
        )
    assert refused.status_code == 422
    assert 'id="e-access_token"' in refused.text
    assert await audit_rows(db, "git_provider.create") == []


async def test_url_repositories_are_audited_through_the_api_and_the_web(
    client: httpx.AsyncClient, admin: Account, db: Database, make_git_repo: MakeGitRepo
) -> None:
    by_api = make_git_repo({"deploy.sh": "echo api\n"}, public=True)
    response = await client.post(
        "/api/v1/repositories", headers=admin.headers, json={"url": by_api.clone_url}
    )
    assert response.status_code == 201, response.text
    created = await one_audit_row(db, "repository.create", admin)
    assert created.resource_id == UUID(response.json()["id"])
    assert created.details == {"url": by_api.clone_url}
    deleted = await client.delete(
        f"/api/v1/repositories/{response.json()['id']}", headers=admin.headers
    )
    assert deleted.status_code == 204
    gone = await one_audit_row(db, "repository.delete", admin)
    assert gone.resource_id == created.resource_id

    by_web = make_git_repo({"deploy.sh": "echo web\n"}, public=True)
    async with browser_client(client, admin) as http:
        csrf = await csrf_token(http, "/repositories")
        added = await http.post(
            "/repositories", data={"url": by_web.clone_url, "name": "", "csrf_token": csrf}
        )
    assert added.status_code == 303, added.text
    rows = await audit_rows(db, "repository.create")
    assert [row.details["url"] for row in rows] == [by_api.clone_url, by_web.clone_url]
    assert added.headers["location"] == f"/repositories/{rows[1].resource_id}"
    assert str(rows[1].actor_profile_id) == admin.user_id


async def test_oauth_applications_are_audited(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitlab: FakeGitLab
) -> None:
    client_id, secret = fake_gitlab.forge.add_oauth_client()
    created = await client.post(
        "/api/v1/git-oauth-apps",
        headers=admin.headers,
        json={
            "type": "gitlab",
            "server_url": fake_gitlab.server_url,
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert created.status_code == 201, created.text
    app_id = UUID(created.json()["id"])
    assert (await one_audit_row(db, "git_oauth_app.create", admin)).resource_id == app_id
    base = f"/api/v1/git-oauth-apps/{app_id}"
    changed = await client.patch(base, headers=admin.headers, json={"client_secret": "rotated"})
    assert changed.status_code == 200
    updated = await one_audit_row(db, "git_oauth_app.update", admin)
    assert updated.details == {"fields": ["client_secret"]}
    assert (await client.delete(base, headers=admin.headers)).status_code == 204
    assert (await one_audit_row(db, "git_oauth_app.delete", admin)).resource_id == app_id
    for row in await audit_rows(db, "git_oauth_app.create"):
        assert secret not in str(row.details)
