"""Browsing through each provider's API (and git for URL repositories), and the script catalogue."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.accounts.principal import Principal
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.browse import TTLCache
from shipyard.git.flows import script_catalogue
from shipyard.git.scripts import script_id_for
from shipyard.runtime import Runtime
from tests.fixtures.git import MakeGitRepo, RepositoryFactory
from tests.integration.git.helpers import Fake, all_repositories, connect, run_sync
from tests.support.api import Account, add_member, error_fields
from tests.support.git_server import GitFile, GitHttpServer, HostedRepo

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
FILES: dict[str, str | bytes | GitFile] = {
    "README.md": "# Operations\n",
    "deploy.sh": GitFile("#!/bin/sh\necho deploy\n", executable=True),
    "scripts/backup.bash": "tar czf /tmp/b.tgz /srv\n",
    "scripts/report.py": "print('report')\n",
    "scripts/windows/setup.ps1": "Write-Host hi\n",
    "bin/rotate-logs": GitFile("#!/bin/sh\n", executable=True),
    "docs/logo.png": PNG,
    "data/big.txt": "x" * 5000,
    "notes.txt": "héllo wörld\n",
}
EXPECTED_SCRIPTS = [
    ("bin/rotate-logs", "executable"),
    ("deploy.sh", "shell"),
    ("scripts/backup.bash", "bash"),
    ("scripts/report.py", "python"),
    ("scripts/windows/setup.ps1", "powershell"),
]


def hosted_repo(make_git_repo: MakeGitRepo, *, public: bool = False) -> HostedRepo:
    hosted = make_git_repo(FILES, public=public)
    hosted.commit({"feature.sh": "echo feature\n"}, branch="feature")
    return hosted


@pytest.fixture(params=["github", "gitlab", "gitea", "url"])
async def browsable(
    request: pytest.FixtureRequest,
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    make_git_repo: MakeGitRepo,
    url_repository: RepositoryFactory,
) -> tuple[dict[str, Any], HostedRepo, Fake | None]:
    kind = request.param
    if kind == "url":
        hosted = hosted_repo(make_git_repo, public=True)
        return await url_repository(admin, hosted), hosted, None
    hosted = hosted_repo(make_git_repo)
    fake: Fake = request.getfixturevalue(f"fake_{kind}")
    token = fake.forge.add_user("ops")
    fake.forge.add_repo(
        hosted.name, owner="ops", private=True, bare=hosted.path, clone_url=hosted.clone_url
    )
    provider = await connect(client, admin, kind, fake, token)
    assert (await run_sync(db, settings, admin, provider["id"])).status == "synced"
    repository = next(r for r in await all_repositories(client, admin) if r["name"] == hosted.name)
    return repository, hosted, fake


async def test_branches_tree_and_files(
    client: httpx.AsyncClient,
    admin: Account,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, hosted, _ = browsable
    base = f"/api/v1/repositories/{repository['id']}"
    branches = (await client.get(f"{base}/branches", headers=admin.headers)).json()
    assert {(b["name"], b["commit_sha"], b["is_default"]) for b in branches} == {
        ("main", hosted.head("main"), True),
        ("feature", hosted.head("feature"), False),
    }
    root = await client.get(f"{base}/tree", headers=admin.headers)
    assert root.status_code == 200, root.text
    entries = [(e["name"], e["type"], e["is_script"]) for e in root.json()["entries"]]
    assert entries == [
        ("bin", "dir", False),
        ("data", "dir", False),
        ("docs", "dir", False),
        ("scripts", "dir", False),
        ("deploy.sh", "file", True),
        ("notes.txt", "file", False),
        ("README.md", "file", False),
    ]
    assert root.json()["ref"] == "main"
    sub = (
        await client.get(f"{base}/tree", headers=admin.headers, params={"path": "scripts/"})
    ).json()
    assert [(e["path"], e["type"]) for e in sub["entries"]] == [
        ("scripts/windows", "dir"),
        ("scripts/backup.bash", "file"),
        ("scripts/report.py", "file"),
    ]
    feature = (
        await client.get(f"{base}/tree", headers=admin.headers, params={"ref": "feature"})
    ).json()
    assert "feature.sh" in [e["name"] for e in feature["entries"]]

    text_file = (
        await client.get(f"{base}/file", headers=admin.headers, params={"path": "notes.txt"})
    ).json()
    assert text_file["content"] == "héllo wörld\n"
    assert text_file["encoding"] == "utf-8"
    assert text_file["is_binary"] is False and text_file["truncated"] is False
    assert text_file["size"] == len("héllo wörld\n".encode())
    binary = (
        await client.get(f"{base}/file", headers=admin.headers, params={"path": "docs/logo.png"})
    ).json()
    assert binary["is_binary"] is True
    assert binary["content"] is None and binary["size"] == len(PNG)
    on_branch = await client.get(
        f"{base}/file", headers=admin.headers, params={"path": "feature.sh", "ref": "feature"}
    )
    assert on_branch.json()["content"] == "echo feature\n"


async def test_files_over_the_cap_come_without_content(
    client: httpx.AsyncClient,
    admin: Account,
    settings: Settings,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, _, _ = browsable
    settings.git_file_max_bytes = 1000
    response = await client.get(
        f"/api/v1/repositories/{repository['id']}/file",
        headers=admin.headers,
        params={"path": "data/big.txt"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["truncated"] is True
    assert response.json()["content"] is None
    assert response.json()["size"] == 5000


async def test_missing_paths_and_refs_are_404_and_directories_are_not_files(
    client: httpx.AsyncClient,
    admin: Account,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, _, fake = browsable
    base = f"/api/v1/repositories/{repository['id']}"
    missing = await client.get(f"{base}/file", headers=admin.headers, params={"path": "nope.txt"})
    assert missing.status_code == 404
    bad_ref = await client.get(f"{base}/tree", headers=admin.headers, params={"ref": "no-branch"})
    assert bad_ref.status_code == 404
    directory = await client.get(f"{base}/file", headers=admin.headers, params={"path": "scripts"})
    # GitLab's files API answers 404 for a directory; the others say what it is.
    if fake is not None and fake.forge.kind == "gitlab":
        assert directory.status_code == 404
    else:
        assert directory.status_code == 422 and error_fields(directory) == ["path"]
    no_path = await client.get(f"{base}/file", headers=admin.headers)
    assert no_path.status_code == 422 and error_fields(no_path) == ["path"]


async def test_the_script_catalogue_has_stable_ids(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, hosted, fake = browsable
    base = f"/api/v1/repositories/{repository['id']}"
    response = await client.get(f"{base}/scripts", headers=admin.headers)
    assert response.status_code == 200, response.text
    catalogue = response.json()
    assert catalogue["ref"] == "main"
    assert [(s["path"], s["kind"]) for s in catalogue["scripts"]] == EXPECTED_SCRIPTS
    repository_id = UUID(repository["id"])
    assert all(
        s["id"] == str(script_id_for(repository_id, s["path"])) for s in catalogue["scripts"]
    )
    executable = {s["path"] for s in catalogue["scripts"] if s["executable"]}
    assert executable == {"bin/rotate-logs", "deploy.sh"}
    feature = (
        await client.get(f"{base}/scripts", headers=admin.headers, params={"ref": "feature"})
    ).json()
    assert "feature.sh" in [s["path"] for s in feature["scripts"]]
    if fake is not None:
        # A rename upstream and a re-sync keep the repository's id, so every script id stays.
        upstream = next(r for r in fake.forge.repos.values() if r.name == hosted.name)
        fake.forge.rename(upstream.id, upstream.name)
        await run_sync(db, settings, admin, repository["provider_id"])
        again = await client.get(f"{base}/scripts", headers=admin.headers)
        assert again.json()["scripts"] == catalogue["scripts"]


async def test_answers_are_cached_briefly(
    client: httpx.AsyncClient,
    admin: Account,
    runtime: Runtime,
    settings: Settings,
    git_server: GitHttpServer,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, hosted, fake = browsable

    def upstream_requests() -> int:
        # Provider repositories are read through the API; URL ones through git itself.
        return len(fake.forge.requests) if fake is not None else len(git_server.requests)

    base = f"/api/v1/repositories/{repository['id']}"
    first = await client.get(f"{base}/tree", headers=admin.headers)
    count = upstream_requests()
    second = await client.get(f"{base}/tree", headers=admin.headers)
    assert second.json() == first.json()
    assert upstream_requests() == count
    # Another member of the tenant shares the entry; a new commit shows once it expires.
    hosted.commit({"new-script.sh": "echo new\n"})
    viewer = await add_member(client, admin, "viewer")
    cached = await client.get(f"{base}/tree", headers=viewer.headers)
    assert "new-script.sh" not in [e["name"] for e in cached.json()["entries"]]
    # The runtime's one cache, not one created by whichever request came first.
    cache: TTLCache = runtime.browse_cache
    assert cache.ttl == settings.git_browse_cache_ttl_seconds
    cache.clock = lambda: time.monotonic() + settings.git_browse_cache_ttl_seconds + 1
    fresh = await client.get(f"{base}/tree", headers=viewer.headers)
    assert "new-script.sh" in [e["name"] for e in fresh.json()["entries"]]
    assert upstream_requests() > count


async def test_script_catalogue_gives_deployments_the_same_catalogue(
    client: httpx.AsyncClient,
    admin: Account,
    runtime: Runtime,
    browsable: tuple[dict[str, Any], HostedRepo, Fake | None],
) -> None:
    repository, _, _ = browsable
    api = (
        await client.get(f"/api/v1/repositories/{repository['id']}/scripts", headers=admin.headers)
    ).json()
    principal = Principal(
        user_id=UUID(admin.user_id), tenant_id=UUID(admin.tenant_id), role="admin", email=""
    )
    repository_id = UUID(repository["id"])
    scripts = await script_catalogue(
        runtime=runtime, principal=principal, repository_id=repository_id, ref=None
    )
    feature = await script_catalogue(
        runtime=runtime, principal=principal, repository_id=repository_id, ref="feature"
    )
    assert [(str(s.id), s.path, s.kind) for s in scripts] == [
        (s["id"], s["path"], s["kind"]) for s in api["scripts"]
    ]
    assert "feature.sh" in [s.path for s in feature]
