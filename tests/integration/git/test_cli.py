"""``shipyard repos`` and ``shipyard providers`` against a live server: -o json, names and URLs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fakes.github import FakeGitHub
from tests.fixtures.git import MakeGitRepo
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard, run_shipyard_json
from tests.support.git_server import GitFile
from tests.support.live_server import serve
from tests.support.runtime import run_worker_until_idle

LABEL = "shipyard-repos"


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_repositories_by_name_url_or_id(
    base_url: str, admin: Account, make_git_repo: MakeGitRepo
) -> None:
    suffix = uuid.uuid4().hex[:6]
    hosted = make_git_repo(
        {"deploy.sh": GitFile("#!/bin/sh\necho hi\n", executable=True), "README": "tools\n"},
        public=True,
        name=f"tools-{suffix}",
    )
    other = make_git_repo({"run.sh": "echo other\n"}, public=True, name=f"other-{suffix}")

    async def run(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, "repos", *args, label=LABEL)

    code, added, err = await run("add", hosted.clone_url, "--description", "Infra scripts")
    assert code == 0, err
    assert added["provider_type"] == "url" and added["provider_id"] is None
    assert added["name"] == f"tools-{suffix}" and added["clone_url"] == hosted.clone_url
    assert added["description"] == "Infra scripts" and added["default_branch"] == "main"

    code, listed, _ = await run("list")
    assert code == 0 and [repo["id"] for repo in listed] == [added["id"]]
    code, listed, _ = await run("list", "--type", "github")
    assert code == 0 and listed == []
    for reference in (f"tools-{suffix}", hosted.clone_url, added["id"]):
        code, shown, err = await run("show", reference)
        assert code == 0, err
        assert shown["id"] == added["id"], reference

    code, branches, _ = await run("branches", f"tools-{suffix}")
    assert code == 0
    assert [(b["name"], b["is_default"]) for b in branches] == [("main", True)]
    assert branches[0]["commit_sha"] == hosted.head()
    code, catalogue, _ = await run("scripts", hosted.clone_url, "--ref", "main")
    assert code == 0 and catalogue["repository_id"] == added["id"] and catalogue["ref"] == "main"
    assert [script["path"] for script in catalogue["scripts"]] == ["deploy.sh"]
    assert catalogue["scripts"][0]["id"]

    code, nothing, err = await run("sync", f"tools-{suffix}")
    assert code == 2 and nothing is None and "added by URL" in err

    # People get tables.
    for args, expected in (
        (("list",), f"tools-{suffix}"),
        (("show", added["id"]), hosted.clone_url),
        (("branches", added["id"]), hosted.head()[:12]),
        (("scripts", added["id"]), "deploy.sh"),
    ):
        code, out = await run_shipyard(base_url, admin.token, "repos", *args, label=LABEL)
        assert code == 0 and expected in out, out

    # A second repository under the same name: the name alone is ambiguous (exit 2), its URL
    # or id is not.
    code, twin, _ = await run("add", other.clone_url, "--name", f"tools-{suffix}")
    assert code == 0 and twin["name"] == f"tools-{suffix}"
    code, nothing, err = await run("show", f"tools-{suffix}")
    assert code == 2 and nothing is None
    assert f"2 repositories are named 'tools-{suffix}'" in err
    assert added["id"] in err and twin["id"] in err and len(err.strip().splitlines()) == 1
    code, shown, _ = await run("show", other.clone_url)
    assert code == 0 and shown["id"] == twin["id"]
    code, _, err = await run("show", "no-such-repository")
    assert code == 1 and "no repository named 'no-such-repository'" in err

    code, deleted, _ = await run("delete", other.clone_url)
    assert code == 0 and deleted == {"id": twin["id"], "name": twin["full_name"], "deleted": True}
    code, listed, _ = await run("list")
    assert code == 0 and [repo["id"] for repo in listed] == [added["id"]]


async def test_git_providers_add_sync_and_their_repositories(
    base_url: str, admin: Account, db: Database, settings: Settings, fake_github: FakeGitHub
) -> None:
    token = canary.remember(fake_github.forge.add_user("octo"), "GitHub token")
    fake_github.forge.add_many(3, owner="octo")

    async def run(*args: str, stdin: bytes | None = None) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, *args, label=LABEL, stdin=stdin)

    code, _, err = await run("providers", "add", "github", "--server-url", fake_github.server_url)
    assert code == 2 and "--token-stdin" in err
    code, provider, err = await run(
        "providers", "add", "github", "--token-stdin", "--server-url", fake_github.server_url,
        "--display-name", "Octo's GitHub", stdin=(token + "\n").encode(),
    )  # fmt: skip
    assert code == 0, err
    assert provider["type"] == "github" and provider["name"] == "octo"
    assert provider["display_name"] == "Octo's GitHub" and provider["has_access_token"]
    assert token not in str(provider)

    code, providers, _ = await run("providers", "list")
    assert code == 0 and [p["id"] for p in providers] == [provider["id"]]
    code, shown, _ = await run("providers", "show", "Octo's GitHub")
    assert code == 0 and shown["id"] == provider["id"]
    code, out = await run_shipyard(base_url, admin.token, "providers", "list", label=LABEL)
    assert code == 0 and "Octo's GitHub" in out and fake_github.server_url in out

    # The first sync was queued when it was added: a worker runs it while the command waits.
    waiting = asyncio.create_task(run("providers", "sync", "octo", "--wait", "--timeout", "60"))
    for _ in range(300):
        if waiting.done():
            break
        await run_worker_until_idle(settings, db, concurrency=1)
        await asyncio.sleep(0.1)
    code, synced, err = await waiting
    assert code == 0, err
    assert synced["sync"]["provider_id"] == provider["id"]
    assert synced["provider"]["sync_status"] == "synced"
    assert synced["provider"]["repository_count"] == 3

    code, repos, _ = await run("repos", "list", "--provider", "octo")
    assert code == 0 and len(repos) == 3
    assert {repo["provider_id"] for repo in repos} == {provider["id"]}
    code, queued, _ = await run("repos", "sync", repos[0]["full_name"])
    assert code == 0 and queued["sync"]["provider_id"] == provider["id"]
    assert queued["sync"]["queued"] is True and queued["provider"]["id"] == provider["id"]

    code, deleted, _ = await run("providers", "delete", provider["id"])
    assert code == 0 and deleted == {"id": provider["id"], "name": "octo", "deleted": True}
    code, repos, _ = await run("repos", "list")
    assert code == 0 and repos == []
