"""Shared checkouts: runs that start together share one fetch and one working tree per commit."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from shipyard.config import Settings
from shipyard.git.clone import checkout_url_shared, shared_tree_count
from shipyard.git.gitcmd import GitCredentials
from tests.fixtures.git import MakeGitRepo
from tests.support.git_server import GitHttpServer, HostedRepo

REPOSITORY_ID = UUID(int=7)


def fetches(server: GitHttpServer, hosted: HostedRepo, since: int) -> int:
    """git fetches of ``hosted`` since request ``since`` (each starts with GET info/refs)."""
    return sum(
        1
        for r in server.requests[since:]
        if r.path.endswith("/info/refs") and f"/{hosted.name}.git" in r.path
    )


def worktrees(cache: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=cache, capture_output=True, text=True
    ).stdout
    return [line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("worktree ")]


async def test_runs_of_one_commit_share_one_fetch_and_tree_removed_after_the_last(
    settings: Settings, make_git_repo: MakeGitRepo, git_server: GitHttpServer
) -> None:
    hosted = make_git_repo({"app.sh": "echo v1\n"})
    credentials = GitCredentials(token=hosted.token)
    before = len(git_server.requests)
    now = datetime.now(UTC)
    trees = await asyncio.gather(
        *(
            checkout_url_shared(
                hosted.clone_url,
                ref="main",
                credentials=credentials,
                cache_dir=settings.clone_cache_dir,
                not_before=now,
            )
            for _ in range(5)
        )
    )
    first = trees[0]
    try:
        assert {tree.path for tree in trees} == {first.path}
        assert {tree.commit_sha for tree in trees} == {hosted.head()}
        assert fetches(git_server, hosted, before) == 1
        assert shared_tree_count() == 1
        for tree in trees:
            assert (tree.path / "app.sh").read_text() == "echo v1\n"
        ids = {tuple(s.path for s in await tree.scripts(REPOSITORY_ID)) for tree in trees}
        assert ids == {("app.sh",)}
        # A run pinned to that same commit joins the tree without fetching again.
        pinned = await checkout_url_shared(
            hosted.clone_url,
            ref=hosted.head(),
            credentials=credentials,
            cache_dir=settings.clone_cache_dir,
        )
        assert pinned.path == first.path and fetches(git_server, hosted, before) == 1
        trees.append(pinned)
        for tree in trees[:-1]:
            await tree.remove()
            assert first.path.exists()  # others still use it
    finally:
        for tree in trees:
            await tree.remove()
    assert not first.path.exists()
    assert str(first.path) not in worktrees(first.cache_path)
    assert shared_tree_count() == 0


async def test_a_pinned_run_and_a_branch_run_that_moved_get_their_own_commits(
    settings: Settings, make_git_repo: MakeGitRepo, git_server: GitHttpServer
) -> None:
    hosted = make_git_repo({"app.sh": "echo v1\n"})
    credentials = GitCredentials(token=hosted.token)
    old = hosted.head()
    early = await checkout_url_shared(
        hosted.clone_url,
        ref="main",
        credentials=credentials,
        cache_dir=settings.clone_cache_dir,
        not_before=datetime.now(UTC),
    )
    new = hosted.commit({"app.sh": "echo v2\n"})
    requested = datetime.now(UTC)
    pinned, moved = await asyncio.gather(
        checkout_url_shared(
            hosted.clone_url, ref=old, credentials=credentials, cache_dir=settings.clone_cache_dir
        ),
        # Asked for after the push: the earlier resolution of main is not reused.
        checkout_url_shared(
            hosted.clone_url,
            ref="main",
            credentials=credentials,
            cache_dir=settings.clone_cache_dir,
            not_before=requested,
        ),
    )
    try:
        assert early.commit_sha == old and pinned.commit_sha == old
        assert pinned.path == early.path
        assert (pinned.path / "app.sh").read_text() == "echo v1\n"
        assert moved.commit_sha == new and moved.path != pinned.path
        assert (moved.path / "app.sh").read_text() == "echo v2\n"
        assert shared_tree_count() == 2
    finally:
        for tree in (early, pinned, moved):
            await tree.remove()
    assert not pinned.path.exists() and not moved.path.exists()
    assert shared_tree_count() == 0
