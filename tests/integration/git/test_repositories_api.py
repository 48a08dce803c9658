"""Repositories API: search, filters, pinned first, keyset pages, pins, URL repositories."""

from __future__ import annotations

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fakes.github import FakeGitHub
from tests.fixtures.git import MakeGitRepo, RepositoryFactory
from tests.integration.git.helpers import all_repositories, connect, run_sync
from tests.support.api import Account, add_member, error_fields
from tests.support.git_server import GitHttpServer


async def synced_github(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake: FakeGitHub,
    count: int,
) -> dict[str, object]:
    token = fake.forge.add_user("octo")
    fake.forge.add_many(count, owner="octo")
    provider = await connect(client, admin, "github", fake, token)
    assert (await run_sync(db, settings, admin, provider["id"])).status == "synced"
    return provider


async def test_keyset_pages_cover_everything_once_in_owner_name_order(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_github: FakeGitHub,
) -> None:
    await synced_github(client, admin, db, settings, fake_github, 230)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get("/api/v1/repositories", headers=admin.headers, params=params)
        ).json()
        seen.extend(r["full_name"] for r in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 230
    assert seen == sorted(seen, key=str.lower)
    bad = await client.get("/api/v1/repositories", headers=admin.headers, params={"cursor": "zz"})
    assert bad.status_code == 422 and error_fields(bad) == ["cursor"]
    too_many = await client.get(
        "/api/v1/repositories", headers=admin.headers, params={"limit": 201}
    )
    assert too_many.status_code == 422 and error_fields(too_many) == ["limit"]


async def test_search_and_filters(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_github: FakeGitHub,
) -> None:
    provider = await synced_github(client, admin, db, settings, fake_github, 60)
    everything = await all_repositories(client, admin)

    async def names(**params: object) -> set[str]:
        return {r["full_name"] for r in await all_repositories(client, admin, **params)}

    assert await names(q="repo-0001") == {
        r["full_name"] for r in everything if "repo-0001" in r["name"]
    }
    assert await names(q="OCTO-ORG") == {
        r["full_name"] for r in everything if r["owner"] == "octo-org"
    }
    assert await names(q="octo/repo-00004") == {"octo/repo-00004"}
    # Addresses too: the clone URL (with its .git) names one repository.
    (fourth,) = [r for r in everything if r["full_name"] == "octo/repo-00004"]
    assert fourth["clone_url"].endswith("octo/repo-00004.git")
    assert await names(q=fourth["clone_url"]) == {"octo/repo-00004"}
    assert await names(q=fourth["clone_url"].upper()) == {"octo/repo-00004"}
    # LIKE wildcards in the search are literal characters.
    assert await names(q="%") == set()
    assert await names(q="repo_0") == set()
    assert await names(language="python") == {
        r["full_name"] for r in everything if r["language"] == "Python"
    }
    assert await names(is_private="true") == {r["full_name"] for r in everything if r["is_private"]}
    assert await names(is_private="false") == {
        r["full_name"] for r in everything if not r["is_private"]
    }
    assert await names(provider_id=provider["id"]) == {r["full_name"] for r in everything}
    assert await names(provider_type="url") == set()
    bad = await client.get(
        "/api/v1/repositories", headers=admin.headers, params={"provider_id": "nope"}
    )
    assert bad.status_code == 422 and error_fields(bad) == ["provider_id"]
    bad_type = await client.get(
        "/api/v1/repositories", headers=admin.headers, params={"provider_type": "svn"}
    )
    assert bad_type.status_code == 422 and error_fields(bad_type) == ["provider_type"]


async def test_pins_are_per_person_and_come_first(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_github: FakeGitHub,
) -> None:
    await synced_github(client, admin, db, settings, fake_github, 90)
    everything = await all_repositories(client, admin)
    viewer = await add_member(client, admin, "viewer")
    chosen = [everything[70], everything[30]]
    for repo in chosen:
        first = await client.put(f"/api/v1/repositories/{repo['id']}/pin", headers=viewer.headers)
        again = await client.put(f"/api/v1/repositories/{repo['id']}/pin", headers=viewer.headers)
        assert first.status_code == again.status_code == 200
        assert again.json() == {"repository_id": repo["id"], "is_pinned": True}
    mine = (await client.get("/api/v1/repositories", headers=viewer.headers)).json()["items"]
    assert [r["id"] for r in mine[:2]] == [everything[30]["id"], everything[70]["id"]]
    assert [r["is_pinned"] for r in mine[:3]] == [True, True, False]
    # The admin's list is not affected by the viewer's pins.
    theirs = (await client.get("/api/v1/repositories", headers=admin.headers)).json()["items"]
    assert theirs[0]["id"] == everything[0]["id"] and not theirs[0]["is_pinned"]
    pinned_only = await all_repositories(client, viewer, pinned="true")
    assert [r["id"] for r in pinned_only] == [everything[30]["id"], everything[70]["id"]]
    unpinned = await all_repositories(client, viewer, pinned="false")
    assert len(unpinned) == 88
    # Pinned first survives paging: the second page continues after the pins.
    page = await client.get("/api/v1/repositories", headers=viewer.headers, params={"limit": 1})
    page2 = await client.get(
        "/api/v1/repositories",
        headers=viewer.headers,
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
    )
    assert [r["id"] for r in page2.json()["items"]] == [everything[70]["id"], everything[0]["id"]]
    removed = await client.delete(
        f"/api/v1/repositories/{everything[30]['id']}/pin", headers=viewer.headers
    )
    assert removed.json() == {"repository_id": everything[30]["id"], "is_pinned": False}
    shown = await client.get(f"/api/v1/repositories/{everything[70]['id']}", headers=viewer.headers)
    assert shown.json()["is_pinned"] is True


async def test_adding_a_public_repository_by_url(
    client: httpx.AsyncClient, admin: Account, make_git_repo: MakeGitRepo
) -> None:
    hosted = make_git_repo({"deploy.sh": "echo hi\n"}, public=True, default_branch="trunk")
    response = await client.post(
        "/api/v1/repositories",
        headers=admin.headers,
        json={"url": hosted.clone_url, "description": "Infra scripts"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["provider_type"] == "url"
    assert body["provider_id"] is None
    assert body["name"] == hosted.name
    assert body["default_branch"] == "trunk"
    assert body["clone_url"] == hosted.clone_url
    assert body["description"] == "Infra scripts"
    assert body["is_private"] is False
    assert body["sync_status"] == "synced"
    duplicate = await client.post(
        "/api/v1/repositories", headers=admin.headers, json={"url": hosted.clone_url}
    )
    assert duplicate.status_code == 409
    listed = await all_repositories(client, admin, provider_type="url")
    assert [r["id"] for r in listed] == [body["id"]]


async def test_repository_urls_that_cannot_be_added_name_the_url(
    client: httpx.AsyncClient,
    admin: Account,
    make_git_repo: MakeGitRepo,
    git_server: GitHttpServer,
) -> None:
    private = make_git_repo({"a.sh": "echo\n"})
    cases = {
        private.clone_url: "asks for credentials",
        f"{git_server.url}/missing.git": "not a Git repository",
        "ssh://git@example.com/x.git": "http:// or https://",
        f"http://user:pw@127.0.0.1:{git_server.url.rsplit(':', 1)[1]}/x.git": "credentials",
        "https://example.com": "path",
    }
    for url, message in cases.items():
        response = await client.post(
            "/api/v1/repositories", headers=admin.headers, json={"url": url}
        )
        assert response.status_code == 422, url
        assert error_fields(response) == ["url"], url
        assert message in response.json()["error"]["message"], url
    missing = await client.post("/api/v1/repositories", headers=admin.headers, json={})
    assert missing.status_code == 422 and error_fields(missing) == ["url"]


async def test_deleting_repositories(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    fake_github: FakeGitHub,
    make_git_repo: MakeGitRepo,
    url_repository: RepositoryFactory,
) -> None:
    await synced_github(client, admin, db, settings, fake_github, 3)
    synced = (await all_repositories(client, admin))[0]
    added = await url_repository(admin, make_git_repo({"x.sh": "echo\n"}, public=True))
    refused = await client.delete(f"/api/v1/repositories/{synced['id']}", headers=admin.headers)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "repository_synced"
    deleted = await client.delete(f"/api/v1/repositories/{added['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/repositories/{added['id']}", headers=admin.headers)
    assert gone.status_code == 404


@pytest.mark.parametrize("role", ["viewer", "developer"])
async def test_only_admins_add_or_delete_but_everyone_reads_and_pins(
    client: httpx.AsyncClient,
    admin: Account,
    make_git_repo: MakeGitRepo,
    url_repository: RepositoryFactory,
    role: str,
) -> None:
    hosted = make_git_repo({"x.sh": "echo\n"}, public=True)
    added = await url_repository(admin, hosted)
    member = await add_member(client, admin, role)
    other = make_git_repo({"y.sh": "echo\n"}, public=True)
    create = await client.post(
        "/api/v1/repositories", headers=member.headers, json={"url": other.clone_url}
    )
    assert create.status_code == 403
    delete = await client.delete(f"/api/v1/repositories/{added['id']}", headers=member.headers)
    assert delete.status_code == 403
    assert (
        await client.get(f"/api/v1/repositories/{added['id']}", headers=member.headers)
    ).status_code == 200
    pin = await client.put(f"/api/v1/repositories/{added['id']}/pin", headers=member.headers)
    assert pin.status_code == 200


async def test_another_tenant_cannot_see_read_or_pin_repositories(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    make_git_repo: MakeGitRepo,
    url_repository: RepositoryFactory,
) -> None:
    added = await url_repository(admin, make_git_repo({"x.sh": "echo\n"}, public=True))
    base = f"/api/v1/repositories/{added['id']}"
    assert (await client.get(base, headers=other_admin.headers)).status_code == 404
    assert (await client.put(f"{base}/pin", headers=other_admin.headers)).status_code == 404
    assert (await client.delete(f"{base}/pin", headers=other_admin.headers)).status_code == 404
    assert (await client.delete(base, headers=other_admin.headers)).status_code == 404
    for suffix in ("/branches", "/tree", "/scripts", "/file?path=x.sh"):
        assert (await client.get(base + suffix, headers=other_admin.headers)).status_code == 404
    assert await all_repositories(client, other_admin) == []
    # The same URL in another tenant is that tenant's own repository.
    again = await client.post(
        "/api/v1/repositories", headers=other_admin.headers, json={"url": added["clone_url"]}
    )
    assert again.status_code == 201 and again.json()["id"] != added["id"]
