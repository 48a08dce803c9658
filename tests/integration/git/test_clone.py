"""Checkouts for execution: real git against git http-backend behind token auth."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import NotFound, ProviderError
from shipyard.git.clone import checkout, checkout_url, find_scripts
from shipyard.git.gitcmd import GitCredentials
from shipyard.git.models import GitProvider
from shipyard.git.scripts import script_id_for
from tests.fixtures.git import MakeGitRepo, RepositoryFactory
from tests.support.api import Account
from tests.support.git_server import GitFile, GitHttpServer

FILES = {
    "deploy.sh": GitFile("#!/bin/sh\necho deploying\n", executable=True),
    "scripts/migrate.py": "print('migrate')\n",
    "scripts/setup.ps1": "Write-Host setup\n",
    "bin/tool": GitFile("#!/bin/sh\necho tool\n", executable=True),
    "README.md": "# docs\n",
    "config/app.yaml": "debug: false\n",
}


async def provider_token(db: Database, account: Account, provider_id: str) -> str:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        provider = await session.get(GitProvider, UUID(provider_id))
        assert provider is not None and provider.access_token
        return provider.access_token


def git_config_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("config") if path.is_file() and ".git" in str(path)]


async def test_checkout_of_a_private_provider_repository_at_its_default_branch(
    db: Database,
    settings: Settings,
    admin: Account,
    make_git_repo: MakeGitRepo,
    github_repository: RepositoryFactory,
    git_server: GitHttpServer,
) -> None:
    hosted = make_git_repo(FILES)
    repository = await github_repository(admin, hosted)
    before = len(git_server.requests)
    tree = await checkout(
        db=db,
        settings=settings,
        tenant_id=UUID(admin.tenant_id),
        repository_id=UUID(repository["id"]),
    )
    try:
        assert tree.commit_sha == hosted.head()
        assert tree.ref == "main"
        assert (tree.path / "deploy.sh").read_text() == "#!/bin/sh\necho deploying\n"
        assert os.stat(tree.path / "deploy.sh").st_mode & stat.S_IXUSR
        assert not os.stat(tree.path / "README.md").st_mode & stat.S_IXUSR
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=tree.path, capture_output=True, text=True
        )
        assert head.stdout.strip() == hosted.head()
        # Fetched shallow: one commit of history.
        assert (tree.cache_path / "shallow").exists()
        # Under the tenant's own directory of the clone cache.
        assert tree.cache_path.parent == settings.clone_cache_dir / admin.tenant_id
        requests = git_server.requests[before:]
        assert requests and all(r.authorization for r in requests if r.status == 200)
        # The token travelled in a header only: never in a path or query string.
        token = await provider_token(db, admin, repository["provider_id"])
        assert all(token not in r.path + r.query for r in requests)
        for config in [*git_config_files(settings.clone_cache_dir), tree.cache_path / "config"]:
            assert token not in config.read_text()
    finally:
        await tree.remove()
    assert not tree.path.exists()


async def test_find_scripts_lists_runnable_files_with_the_catalogue_ids(
    db: Database,
    settings: Settings,
    client: httpx.AsyncClient,
    admin: Account,
    make_git_repo: MakeGitRepo,
    github_repository: RepositoryFactory,
) -> None:
    hosted = make_git_repo(FILES)
    repository = await github_repository(admin, hosted)
    tree = await checkout(
        db=db,
        settings=settings,
        tenant_id=UUID(admin.tenant_id),
        repository_id=UUID(repository["id"]),
    )
    try:
        scripts = find_scripts(tree.path, UUID(repository["id"]))
    finally:
        await tree.remove()
    assert [(s.path, s.kind, s.executable) for s in scripts] == [
        ("bin/tool", "executable", True),
        ("deploy.sh", "shell", True),
        ("scripts/migrate.py", "python", False),
        ("scripts/setup.ps1", "powershell", False),
    ]
    assert all(s.id == script_id_for(UUID(repository["id"]), s.path) for s in scripts)
    catalogue = await client.get(
        f"/api/v1/repositories/{repository['id']}/scripts", headers=admin.headers
    )
    assert catalogue.status_code == 200, catalogue.text
    assert {(s["id"], s["path"]) for s in catalogue.json()["scripts"]} == {
        (str(s.id), s.path) for s in scripts
    }


async def test_without_the_token_the_server_refuses_and_the_error_says_so(
    settings: Settings, make_git_repo: MakeGitRepo, git_server: GitHttpServer
) -> None:
    hosted = make_git_repo(FILES)
    for credentials in (None, GitCredentials(token="wrong-token")):
        with pytest.raises(ProviderError) as caught:
            await checkout_url(
                hosted.clone_url,
                credentials=credentials,
                cache_dir=settings.clone_cache_dir,
            )
        assert caught.value.code == "git_auth_failed"
    assert any(r.status == 401 for r in git_server.requests)


async def test_every_kind_of_ref_resolves_to_its_exact_commit(
    settings: Settings, make_git_repo: MakeGitRepo
) -> None:
    hosted = make_git_repo({"app.sh": "echo v1\n"})
    first = hosted.head()
    hosted.tag("v1.0")
    hosted.tag("light", annotated=False)
    second = hosted.commit({"app.sh": "echo v2\n"}, message="second")
    feature = hosted.commit({"feature.py": "print(1)\n"}, branch="feature")
    credentials = GitCredentials(token=hosted.token)
    cases: dict[str | None, str] = {
        None: second,
        "main": second,
        "feature": feature,
        "v1.0": first,
        "light": first,
        first: first,
        first[:10]: first,
    }
    for ref, expected in cases.items():
        tree = await checkout_url(
            hosted.clone_url, ref=ref, credentials=credentials, cache_dir=settings.clone_cache_dir
        )
        try:
            assert tree.commit_sha == expected, ref
            content = (tree.path / "app.sh").read_text()
            assert content == ("echo v1\n" if expected == first else "echo v2\n"), ref
            assert (tree.path / "feature.py").exists() == (expected == feature)
        finally:
            await tree.remove()
    for missing in ("no-such-branch", "0123456789abcdef0123456789abcdef01234567", "deadbeef"):
        with pytest.raises(NotFound) as caught:
            await checkout_url(
                hosted.clone_url,
                ref=missing,
                credentials=credentials,
                cache_dir=settings.clone_cache_dir,
            )
        assert caught.value.code == "ref_not_found"


async def test_the_cache_is_reused_and_updated_by_fetch(
    settings: Settings, make_git_repo: MakeGitRepo
) -> None:
    hosted = make_git_repo({"app.sh": "echo one\n"})
    credentials = GitCredentials(token=hosted.token)
    first = await checkout_url(
        hosted.clone_url, credentials=credentials, cache_dir=settings.clone_cache_dir
    )
    await first.remove()
    updated = hosted.commit({"app.sh": "echo two\n"})
    second = await checkout_url(
        hosted.clone_url, credentials=credentials, cache_dir=settings.clone_cache_dir
    )
    try:
        assert second.cache_path == first.cache_path
        assert second.commit_sha == updated
        assert (second.path / "app.sh").read_text() == "echo two\n"
        caches = [p for p in settings.clone_cache_dir.iterdir() if p.suffix == ".git"]
        assert caches == [first.cache_path]
    finally:
        await second.remove()


async def test_concurrent_checkouts_at_different_refs_do_not_collide(
    settings: Settings, make_git_repo: MakeGitRepo
) -> None:
    hosted = make_git_repo({"version.txt": "main\n"})
    for branch in ("blue", "green", "red"):
        hosted.commit({"version.txt": f"{branch}\n"}, branch=branch)
    credentials = GitCredentials(token=hosted.token)
    refs = ["main", "blue", "green", "red", "main", "blue"]
    trees = await asyncio.gather(
        *(
            checkout_url(
                hosted.clone_url,
                ref=ref,
                credentials=credentials,
                cache_dir=settings.clone_cache_dir,
            )
            for ref in refs
        )
    )
    try:
        assert len({tree.path for tree in trees}) == len(refs)
        for ref, tree in zip(refs, trees, strict=True):
            assert (tree.path / "version.txt").read_text() == f"{ref}\n"
            assert tree.commit_sha == hosted.head(ref)
    finally:
        await asyncio.gather(*(tree.remove() for tree in trees))


async def test_public_url_repository_checks_out_without_credentials(
    db: Database,
    settings: Settings,
    admin: Account,
    make_git_repo: MakeGitRepo,
    url_repository: RepositoryFactory,
    git_server: GitHttpServer,
) -> None:
    hosted = make_git_repo({"run.sh": "echo public\n"}, public=True)
    repository = await url_repository(admin, hosted)
    before = len(git_server.requests)
    tree = await checkout(
        db=db,
        settings=settings,
        tenant_id=UUID(admin.tenant_id),
        repository_id=UUID(repository["id"]),
    )
    try:
        assert tree.commit_sha == hosted.head()
        assert (tree.path / "run.sh").read_text() == "echo public\n"
        assert all(r.authorization is None for r in git_server.requests[before:])
    finally:
        await tree.remove()


async def test_another_tenant_cannot_check_out_the_repository(
    db: Database,
    settings: Settings,
    admin: Account,
    other_admin: Account,
    make_git_repo: MakeGitRepo,
    github_repository: RepositoryFactory,
) -> None:
    hosted = make_git_repo(FILES)
    repository = await github_repository(admin, hosted)
    with pytest.raises(NotFound):
        await checkout(
            db=db,
            settings=settings,
            tenant_id=UUID(other_admin.tenant_id),
            repository_id=UUID(repository["id"]),
        )


async def test_the_token_is_never_in_argv_logs_or_git_config(
    db: Database,
    settings: Settings,
    admin: Account,
    make_git_repo: MakeGitRepo,
    github_repository: RepositoryFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosted = make_git_repo(FILES)
    repository = await github_repository(admin, hosted)
    commands: list[tuple[Any, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def recording_exec(*args: Any, **kwargs: Any) -> Any:
        commands.append(args)
        return await real_exec(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording_exec)
    caplog.set_level(logging.DEBUG)
    tree = await checkout(
        db=db,
        settings=settings,
        tenant_id=UUID(admin.tenant_id),
        repository_id=UUID(repository["id"]),
        ref="main",
    )
    try:
        with pytest.raises(NotFound):
            await checkout(
                db=db,
                settings=settings,
                tenant_id=UUID(admin.tenant_id),
                repository_id=UUID(repository["id"]),
                ref="missing-branch",
            )
    finally:
        await tree.remove()
    token = await provider_token(db, admin, repository["provider_id"])
    assert commands, "git ran"
    assert all(token not in " ".join(map(str, command)) for command in commands)
    assert all(token not in record.getMessage() for record in caplog.records)
    for config in git_config_files(settings.clone_cache_dir):
        assert token not in config.read_text()
    assert token not in (tree.cache_path / "config").read_text()
