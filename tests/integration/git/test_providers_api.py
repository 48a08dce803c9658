"""Git providers API: connecting by token, validation, roles, tenants, secrets kept secret."""

from __future__ import annotations

import logging
import socket
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select, text

from shipyard.accounts.models import AuditEvent
from shipyard.config import Settings
from shipyard.db import Database
from tests.fakes.gitea import FakeGitea
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.integration.git.helpers import Fake, connect, pin_count, run_sync
from tests.support.api import Account, add_member, error_fields
from tests.support.git_server import GitHttpServer


@pytest.fixture(params=["github", "gitlab", "gitea"])
def provider_kind(request: pytest.FixtureRequest) -> tuple[str, Fake]:
    fake: Fake = request.getfixturevalue(f"fake_{request.param}")
    return request.param, fake


async def test_connecting_with_a_token_fills_the_account_and_hides_the_token(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    provider_kind: tuple[str, Fake],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kind, fake = provider_kind
    caplog.set_level(logging.DEBUG)
    token = fake.forge.add_user("grace", "Grace Hopper")
    response = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": kind, "server_url": fake.server_url + "/", "access_token": token},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["type"] == kind
    assert body["name"] == "grace"
    assert body["display_name"] == "Grace Hopper"
    assert body["server_url"] == fake.server_url
    assert body["is_configured"] is True
    assert body["has_access_token"] is True
    assert body["has_refresh_token"] is False
    assert body["sync_status"] == "pending"
    assert "access_token" not in body
    assert token not in response.text
    listed = await client.get("/api/v1/git-providers", headers=admin.headers)
    assert token not in listed.text
    assert [p["id"] for p in listed.json()["items"]] == [body["id"]]
    # The token was checked against the provider's current-user endpoint.
    assert any(r.path.endswith("/user") for r in fake.forge.requests)
    # Encrypted at rest; never in the audit log or the application log.
    async with db.session(system=True) as session:
        stored = await session.scalar(
            text("SELECT access_token FROM git_providers WHERE id = :id"), {"id": body["id"]}
        )
        audits = (await session.scalars(select(AuditEvent))).all()
    assert stored and token not in stored
    assert any(a.action == "git_provider.create" for a in audits)
    assert all(token not in str(a.details) for a in audits)
    assert all(token not in record.getMessage() for record in caplog.records)


async def test_display_name_can_be_chosen(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub
) -> None:
    token = fake_github.forge.add_user("octo")
    response = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={
            "type": "github",
            "server_url": fake_github.server_url,
            "access_token": token,
            "display_name": "Work GitHub",
        },
    )
    assert response.json()["display_name"] == "Work GitHub"


async def test_a_token_the_provider_refuses_is_a_422_on_access_token(
    client: httpx.AsyncClient, admin: Account, provider_kind: tuple[str, Fake]
) -> None:
    kind, fake = provider_kind
    fake.forge.add_user("grace")
    response = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": kind, "server_url": fake.server_url, "access_token": "not-a-token"},
    )
    assert response.status_code == 422
    assert error_fields(response) == ["access_token"]
    assert "refused this token" in response.json()["error"]["message"]
    listed = await client.get("/api/v1/git-providers", headers=admin.headers)
    assert listed.json()["items"] == []


@pytest.mark.parametrize(
    ("server_url", "message"),
    [
        ("ftp://git.example.com", "http:// or https://"),
        ("git.example.com", "http:// or https://"),
        ("https://", "must name a host"),
        ("https://user:secret@git.example.com", "must not contain credentials"),
        ("https://git.example.com/?x=1", "query"),
        ("http://[::1", "not a valid URL"),
    ],
)
async def test_a_malformed_server_url_is_a_422_on_server_url(
    client: httpx.AsyncClient, admin: Account, server_url: str, message: str
) -> None:
    response = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": "gitlab", "server_url": server_url, "access_token": "t"},
    )
    assert response.status_code == 422
    assert error_fields(response) == ["server_url"]
    assert message in response.json()["error"]["message"]


async def test_an_unreachable_or_wrong_server_is_a_422_on_server_url(
    client: httpx.AsyncClient, admin: Account, git_server: GitHttpServer
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": "gitea", "server_url": f"http://127.0.0.1:{closed}", "access_token": "t"},
    )
    assert unreachable.status_code == 422
    assert error_fields(unreachable) == ["server_url"]
    assert "cannot reach" in unreachable.json()["error"]["message"]
    # A web server that is not a Gitea API at all.
    wrong = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={"type": "gitea", "server_url": git_server.url, "access_token": "t"},
    )
    assert wrong.status_code == 422
    assert error_fields(wrong) == ["server_url"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "bitbucket", "access_token": "t"}, "type"),
        ({"type": "github"}, "access_token"),
        ({"type": "github", "access_token": ""}, "access_token"),
        ({"type": "gitea", "access_token": "t"}, "server_url"),
        ({"type": "github", "access_token": "t", "colour": "red"}, "colour"),
        ({"type": "github", "access_token": "t", "display_name": "x" * 201}, "display_name"),
    ],
)
async def test_invalid_bodies_name_the_field(
    client: httpx.AsyncClient, admin: Account, payload: dict[str, str], field: str
) -> None:
    response = await client.post("/api/v1/git-providers", headers=admin.headers, json=payload)
    assert response.status_code == 422
    assert field in error_fields(response)


async def test_the_same_account_cannot_be_connected_twice(
    client: httpx.AsyncClient, admin: Account, fake_gitea: FakeGitea
) -> None:
    token = fake_gitea.forge.add_user("gitty")
    await connect(client, admin, "gitea", fake_gitea, token)
    again = await client.post(
        "/api/v1/git-providers",
        headers=admin.headers,
        json={
            "type": "gitea",
            "server_url": fake_gitea.server_url,
            "access_token": fake_gitea.forge.issue_pat("gitty"),
        },
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "provider_exists"


async def test_update_renames_and_replaces_the_token_after_checking_it(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_gitlab: FakeGitLab
) -> None:
    token = fake_gitlab.forge.add_user("tanuki")
    provider = await connect(client, admin, "gitlab", fake_gitlab, token)
    url = f"/api/v1/git-providers/{provider['id']}"
    renamed = await client.patch(url, headers=admin.headers, json={"display_name": "Team GitLab"})
    assert renamed.status_code == 200
    assert renamed.json()["display_name"] == "Team GitLab"
    refused = await client.patch(url, headers=admin.headers, json={"access_token": "glpat-bad"})
    assert refused.status_code == 422
    assert error_fields(refused) == ["access_token"]
    fresh = fake_gitlab.forge.issue_pat("tanuki")
    replaced = await client.patch(url, headers=admin.headers, json={"access_token": fresh})
    assert replaced.status_code == 200
    assert fresh not in replaced.text
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        from shipyard.git.models import GitProvider

        row = await session.get(GitProvider, UUID(provider["id"]))
        assert row is not None and row.access_token == fresh
    unknown_field = await client.patch(url, headers=admin.headers, json={"type": "github"})
    assert unknown_field.status_code == 422
    assert error_fields(unknown_field) == ["type"]


async def test_deleting_a_provider_removes_its_repositories_and_pins(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_github: FakeGitHub,
) -> None:
    token = fake_github.forge.add_user("octo")
    fake_github.forge.add_many(12, owner="octo")
    provider = await connect(client, admin, "github", fake_github, token)
    await run_sync(db, settings, admin, provider["id"])
    repos = (await client.get("/api/v1/repositories", headers=admin.headers)).json()["items"]
    await client.put(f"/api/v1/repositories/{repos[0]['id']}/pin", headers=admin.headers)
    assert await pin_count(db) == 1
    deleted = await client.delete(f"/api/v1/git-providers/{provider['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/v1/repositories", headers=admin.headers)).json()["items"] == []
    assert await pin_count(db) == 0
    gone = await client.get(f"/api/v1/git-providers/{provider['id']}", headers=admin.headers)
    assert gone.status_code == 404


@pytest.mark.parametrize("role", ["viewer", "developer"])
async def test_only_admins_manage_providers_but_everyone_reads(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub, role: str
) -> None:
    token = fake_github.forge.add_user("octo")
    provider = await connect(client, admin, "github", fake_github, token)
    member = await add_member(client, admin, role)
    url = f"/api/v1/git-providers/{provider['id']}"
    body = {"type": "github", "server_url": fake_github.server_url, "access_token": token}
    forbidden = [
        await client.post("/api/v1/git-providers", headers=member.headers, json=body),
        await client.patch(url, headers=member.headers, json={"display_name": "x"}),
        await client.delete(url, headers=member.headers),
        await client.post(f"{url}/sync", headers=member.headers),
        await client.get("/api/v1/git-oauth-apps", headers=member.headers),
        await client.get("/api/v1/git-providers/oauth/github/start", headers=member.headers),
    ]
    assert [r.status_code for r in forbidden] == [403] * len(forbidden)
    assert (await client.get(url, headers=member.headers)).status_code == 200
    listed = await client.get("/api/v1/git-providers", headers=member.headers)
    assert [p["id"] for p in listed.json()["items"]] == [provider["id"]]


async def test_another_tenant_sees_nothing_and_gets_404(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, fake_github: FakeGitHub
) -> None:
    token = fake_github.forge.add_user("octo")
    provider = await connect(client, admin, "github", fake_github, token)
    url = f"/api/v1/git-providers/{provider['id']}"
    assert (await client.get(url, headers=other_admin.headers)).status_code == 404
    patched = await client.patch(url, headers=other_admin.headers, json={"display_name": "mine"})
    assert patched.status_code == 404
    assert (await client.post(f"{url}/sync", headers=other_admin.headers)).status_code == 404
    assert (await client.delete(url, headers=other_admin.headers)).status_code == 404
    listed = await client.get("/api/v1/git-providers", headers=other_admin.headers)
    assert listed.json()["items"] == []
    still = await client.get(url, headers=admin.headers)
    assert still.status_code == 200 and still.json()["display_name"] != "mine"


async def test_provider_list_pages_with_a_cursor(
    client: httpx.AsyncClient, admin: Account, fake_github: FakeGitHub
) -> None:
    ids = []
    for index in range(5):
        token = fake_github.forge.add_user(f"user{index}")
        ids.append((await connect(client, admin, "github", fake_github, token))["id"])
    first = await client.get("/api/v1/git-providers", headers=admin.headers, params={"limit": 3})
    second = await client.get(
        "/api/v1/git-providers",
        headers=admin.headers,
        params={"limit": 3, "cursor": first.json()["next_cursor"]},
    )
    seen = [p["id"] for p in first.json()["items"] + second.json()["items"]]
    assert sorted(seen) == sorted(ids)
    assert second.json()["next_cursor"] is None
    bad = await client.get("/api/v1/git-providers", headers=admin.headers, params={"limit": 0})
    assert bad.status_code == 422 and error_fields(bad) == ["limit"]


async def test_sync_of_a_provider_without_token_is_a_conflict(
    client: httpx.AsyncClient, admin: Account, db: Database, fake_github: FakeGitHub
) -> None:
    token = fake_github.forge.add_user("octo")
    provider = await connect(client, admin, "github", fake_github, token)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        await session.execute(
            text("UPDATE git_providers SET access_token = NULL WHERE id = :id"),
            {"id": provider["id"]},
        )
    response = await client.post(
        f"/api/v1/git-providers/{provider['id']}/sync", headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "provider_not_configured"
