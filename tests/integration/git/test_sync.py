"""Repository sync against the three provider fakes: pages, renames, deletions, limits, failures."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, text, update

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.models import GitOAuthState, GitProvider
from shipyard.git.tasks import queue_stale_syncs
from tests.builders.git import GitSyncBuilder
from tests.fakes.common import Forge
from tests.fakes.github import FakeGitHub
from tests.fakes.gitlab import FakeGitLab
from tests.integration.git.helpers import all_repositories, pin_count
from tests.support.api import Account

PAGE_SIZES = {"github": 100, "gitlab": 100, "gitea": 50}
LIST_PATHS = {
    "github": "/api/v3/user/repos",
    "gitlab": "/api/v4/projects",
    "gitea": "/api/v1/user/repos",
}


@pytest.fixture(params=["github", "gitlab", "gitea"])
def provider_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def list_requests(forge: Forge, kind: str) -> list[Any]:
    return [r for r in forge.requests if r.path == LIST_PATHS[kind]]


async def test_thousands_of_repositories_across_pages_fetched_concurrently(
    git_sync: GitSyncBuilder, provider_kind: str
) -> None:
    kind, fake = provider_kind, git_sync.fake(provider_kind)
    fake.forge.latency = 0.01
    provider = await git_sync.connect(kind, repositories=2000)
    result = await git_sync.synced(provider)
    assert result.repositories == 2000
    pages = 2000 // PAGE_SIZES[kind]
    # Each page exactly once, several at a time (bounded by git_page_concurrency).
    assert len(list_requests(fake.forge, kind)) == pages
    assert 1 < fake.forge.max_in_flight <= git_sync.settings.git_page_concurrency
    rows = {row.external_id: row for row in await git_sync.rows(provider)}
    assert len(rows) == 2000
    for repo in provider.upstream[:40]:
        row = rows[str(repo.id)]
        assert row.name == repo.name
        assert row.owner == repo.owner
        assert row.description == repo.description
        assert row.is_private == repo.private
        assert row.default_branch == "main"
        # GitLab lists projects without a language; a follow-up job fills it in.
        assert row.language == (None if kind == "gitlab" else repo.language)
        assert row.provider_type == kind
        assert row.url == f"{fake.server_url}/{repo.full_name}"
        assert row.clone_url == f"{fake.server_url}/{repo.full_name}.git"
        assert row.sync_status == "synced" and row.last_synced_at is not None
    stored = await git_sync.stored(provider)
    assert stored.sync_status == "synced"
    assert stored.last_synced is not None
    assert stored.error is None
    assert (await git_sync.shown(provider))["repository_count"] == 2000


async def test_gitlab_without_totals_follows_next_page_links(
    git_sync: GitSyncBuilder, fake_gitlab: FakeGitLab
) -> None:
    # Past its counting limit GitLab sends no x-total/x-total-pages: only x-next-page.
    fake_gitlab.count_limit = 300
    provider = await git_sync.connect("gitlab", user="tanuki", repositories=1050)
    result = await git_sync.synced(provider)
    assert result.repositories == 1050
    assert len(list_requests(fake_gitlab.forge, "gitlab")) == 11
    assert len(await git_sync.rows(provider)) == 1050


async def test_resync_keeps_ids_and_pins_of_renamed_repositories_and_drops_deleted_ones(
    git_sync: GitSyncBuilder, provider_kind: str
) -> None:
    client, admin = git_sync.client, git_sync.admin
    provider = await git_sync.connect(provider_kind, repositories=120)
    fake, upstream = provider.fake, provider.upstream
    await git_sync.synced(provider)
    by_external = {r["external_id"]: r for r in await all_repositories(client, admin)}
    renamed, deleted, kept = upstream[5], upstream[6], upstream[7]
    for repo in (renamed, deleted, kept):
        pinned = await client.put(
            f"/api/v1/repositories/{by_external[str(repo.id)]['id']}/pin", headers=admin.headers
        )
        assert pinned.status_code == 200
    assert await pin_count(git_sync.db) == 3

    fake.forge.rename(renamed.id, "renamed-service")
    fake.forge.delete(deleted.id)
    added = fake.forge.add_repo("brand-new", owner="ada", language="Go")
    result = await git_sync.synced(provider)
    assert result.removed == 1

    after = {r["external_id"]: r for r in await all_repositories(client, admin)}
    assert len(after) == 120
    assert after[str(renamed.id)]["id"] == by_external[str(renamed.id)]["id"]
    assert after[str(renamed.id)]["name"] == "renamed-service"
    assert after[str(renamed.id)]["is_pinned"] is True
    assert str(deleted.id) not in after
    assert after[str(added.id)]["name"] == "brand-new"
    assert await pin_count(git_sync.db) == 2
    pinned_first = await client.get("/api/v1/repositories", headers=admin.headers)
    assert {r["name"] for r in pinned_first.json()["items"][:2]} == {
        "renamed-service",
        kept.name,
    }


async def test_gitlab_languages_are_looked_up_for_new_and_active_projects_only(
    git_sync: GitSyncBuilder, fake_gitlab: FakeGitLab
) -> None:
    provider = await git_sync.connect("gitlab", user="tanuki", repositories=30)
    upstream = provider.upstream
    # The worker runs the queued sync, then the language job it queued.
    await git_sync.drain_jobs()
    first = [r for r in fake_gitlab.forge.requests if r.path.endswith("/languages")]
    assert len(first) == 30
    rows = {row.external_id: row for row in await git_sync.rows(provider)}
    assert all(rows[str(repo.id)].language == repo.language for repo in upstream)
    quiet, active = upstream[0], upstream[1]
    fake_gitlab.languages[quiet.id] = {"Rust": 100.0}
    fake_gitlab.languages[active.id] = {"Ruby": 70.0, "Shell": 30.0}
    fake_gitlab.forge.rename(active.id, "active-project")
    queued = await git_sync.ask_to_sync(provider)
    assert queued.json()["queued"] is True
    await git_sync.drain_jobs()
    second = [r for r in fake_gitlab.forge.requests if r.path.endswith("/languages")][30:]
    assert [r.path for r in second] == [f"/api/v4/projects/{active.id}/languages"]
    rows = {row.external_id: row for row in await git_sync.rows(provider)}
    assert rows[str(active.id)].language == "Ruby"
    assert rows[str(active.id)].name == "active-project"
    # Unchanged upstream: its stored language stays (no lookup was made for it).
    assert rows[str(quiet.id)].language == quiet.language


async def test_a_secondary_rate_limit_midway_is_waited_out_and_the_sync_completes(
    git_sync: GitSyncBuilder, fake_github: FakeGitHub
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=1200)
    fake_github.secondary_rate_limit(after=5, retry_after=1, count=2)
    result = await git_sync.synced(provider)
    assert result.repositories == 1200
    assert result.rate_limit_waits >= 1
    statuses = [r.status for r in list_requests(fake_github.forge, "github")]
    assert statuses.count(403) == 2
    assert statuses.count(200) == 12
    # Each refused page was asked again only after Retry-After.
    requests = list_requests(fake_github.forge, "github")
    for refused in (r for r in requests if r.status == 403):
        retry = next(r for r in requests if r.at > refused.at and r.query == refused.query)
        assert retry.at - refused.at >= 0.9


@pytest.mark.parametrize("kind", ["gitlab", "gitea"])
async def test_429_with_retry_after_is_waited_out(git_sync: GitSyncBuilder, kind: str) -> None:
    provider = await git_sync.connect(kind, user="limited", repositories=400)
    fake: Any = provider.fake
    if kind == "gitlab":
        fake.rate_limit(after=2, retry_after=1, path_contains="/api/v4/projects?")
    else:
        fake.too_many_requests(after=2, retry_after=1)
    result = await git_sync.synced(provider)
    assert result.repositories == 400
    assert result.rate_limit_waits >= 1
    assert [r.status for r in list_requests(fake.forge, kind)].count(429) == 1


async def test_no_requests_left_holds_back_until_the_reset(
    git_sync: GitSyncBuilder, fake_github: FakeGitHub
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=300)
    exhausted_at = time.monotonic()
    # The reset is a whole epoch second at least 1 s after this moment (2 s, rounded down).
    fake_github.forge.exhaust_rate_limit(provider.token, reset_in=2.0)
    await git_sync.synced(provider)
    requests = list_requests(fake_github.forge, "github")
    # The first page said "0 remaining": the others waited for x-ratelimit-reset. Measured from
    # the exhaustion, not the first request, which a loaded machine may send late.
    assert min(r.at for r in requests[1:]) - exhausted_at >= 0.95
    assert all(r.status == 200 for r in requests)


async def test_a_limit_that_outlasts_the_budget_records_an_error_and_keeps_data(
    git_sync: GitSyncBuilder, fake_github: FakeGitHub
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=150)
    await git_sync.synced(provider)
    fake_github.secondary_rate_limit(after=0, retry_after=1, count=1000)
    impatient = git_sync.settings.model_copy(update={"git_rate_limit_total_wait_seconds": 2.0})
    result = await git_sync.sync(provider, settings=impatient)
    assert result.status == "error"
    stored = await git_sync.stored(provider)
    assert stored.sync_status == "error"
    assert stored.error is not None and "rate-limiting" in stored.error
    assert stored.is_configured is True
    assert len(await git_sync.rows(provider)) == 150


async def test_revoked_token_marks_the_provider_unconfigured_and_keeps_repositories(
    git_sync: GitSyncBuilder, provider_kind: str
) -> None:
    provider = await git_sync.connect(provider_kind, repositories=60)
    await git_sync.synced(provider)
    provider.fake.forge.revoke(provider.token)
    result = await git_sync.sync(provider)
    assert result.status == "error"
    shown = await git_sync.shown(provider)
    assert shown["sync_status"] == "error"
    assert shown["is_configured"] is False
    assert "refused the token" in shown["error"]
    assert shown["repository_count"] == 60


async def test_unreachable_server_records_the_error(git_sync: GitSyncBuilder) -> None:
    provider = await git_sync.connect("gitea", user="gitty")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    async with git_sync.db.session(tenant_id=UUID(git_sync.admin.tenant_id)) as session:
        await session.execute(
            update(GitProvider)
            .where(GitProvider.id == UUID(provider.id))
            .values(server_url=f"http://127.0.0.1:{closed_port}")
        )
    result = await git_sync.sync(provider)
    assert result.status == "error"
    stored = await git_sync.stored(provider)
    assert stored.sync_status == "error"
    # One message for refused and timed out: it must not tell which ports are open.
    assert (stored.error or "").startswith(
        f"cannot reach 127.0.0.1:{closed_port}: the connection failed or timed out"
    )


@pytest.mark.parametrize(
    ("body", "raw", "message"),
    [
        ("<html>Gateway maintenance</html>", True, "not JSON"),
        ({"repositories": []}, False, "where a list was expected"),
        ([{"name": "no-id"}], False, "no valid 'id'"),
    ],
)
async def test_a_malformed_page_midway_records_the_error_and_keeps_earlier_data(
    git_sync: GitSyncBuilder,
    fake_github: FakeGitHub,
    body: Any,
    raw: bool,
    message: str,
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=350)
    await git_sync.synced(provider)
    before = {row.external_id: row.name for row in await git_sync.rows(provider)}
    fake_github.forge.rename(provider.upstream[0].id, "renamed-but-not-synced")
    fake_github.forge.delete(provider.upstream[1].id)
    fake_github.forge.fail(200, body, path_contains="page=3", raw=raw)
    result = await git_sync.sync(provider)
    assert result.status == "error"
    stored = await git_sync.stored(provider)
    assert stored.sync_status == "error"
    assert stored.error is not None and message in stored.error
    after = {row.external_id: row.name for row in await git_sync.rows(provider)}
    assert after == before


async def test_pages_that_shift_during_the_sync_delete_nothing(
    git_sync: GitSyncBuilder, fake_github: FakeGitHub
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=250)
    upstream = provider.upstream
    await git_sync.synced(provider)
    fake_github.forge.delete(upstream[10].id)
    short_page = [fake_github.repo_json(repo) for repo in upstream[100:150]]
    fake_github.forge.fail(200, short_page, path_contains="page=2", count=2)
    result = await git_sync.synced(provider)
    assert result.removed == 0
    stored = await git_sync.stored(provider)
    assert stored.error is not None and "kept until the next sync" in stored.error
    assert len(await git_sync.rows(provider)) == 250


async def test_sync_endpoint_queues_one_job_and_the_worker_runs_it(
    git_sync: GitSyncBuilder,
) -> None:
    provider = await git_sync.connect("github", user="octo", repositories=30)
    # Connecting queued a first sync; asking again while it waits queues nothing more.
    again = await git_sync.ask_to_sync(provider)
    assert again.status_code == 202
    assert again.json() == {
        "provider_id": provider.id,
        "sync_status": "pending",
        "queued": False,
    }
    await git_sync.drain_jobs()
    shown = await git_sync.shown(provider)
    assert shown["sync_status"] == "synced"
    assert shown["repository_count"] == 30
    queued = await git_sync.ask_to_sync(provider)
    assert queued.json()["queued"] is True
    assert len(await all_repositories(git_sync.client, git_sync.admin)) == 30


async def test_periodic_sync_queues_only_providers_older_than_the_interval(
    git_sync: GitSyncBuilder,
) -> None:
    db, settings = git_sync.db, git_sync.settings
    fresh = await git_sync.connect("github", user="fresh")
    stale = await git_sync.connect("github", user="stale")
    await git_sync.drain_jobs()
    async with db.session(tenant_id=UUID(git_sync.admin.tenant_id)) as session:
        await session.execute(
            update(GitProvider)
            .where(GitProvider.id == UUID(stale.id))
            .values(last_synced=datetime.now(UTC) - timedelta(minutes=61))
        )
    assert await queue_stale_syncs(db=db, settings=settings) == 1
    # Already waiting: not queued twice.
    assert await queue_stale_syncs(db=db, settings=settings) == 0
    async with db.session(system=True) as session:
        args = (
            (
                await session.execute(
                    text("SELECT args FROM procrastinate_jobs WHERE status = 'todo'")
                )
            )
            .scalars()
            .all()
        )
    assert [a["provider_id"] for a in args] == [stale.id]
    assert fresh.id not in [a["provider_id"] for a in args]
    disabled = settings.model_copy(update={"git_sync_interval_minutes": 0})
    assert await queue_stale_syncs(db=db, settings=disabled) == 0


async def test_the_periodic_task_forgets_expired_oauth_states(
    admin: Account, db: Database, settings: Settings
) -> None:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        now = datetime.now(UTC)
        session.add(
            GitOAuthState(
                nonce="old", tenant_id=UUID(admin.tenant_id), expires_at=now - timedelta(minutes=1)
            )
        )
        session.add(
            GitOAuthState(
                nonce="live", tenant_id=UUID(admin.tenant_id), expires_at=now + timedelta(minutes=5)
            )
        )
    await queue_stale_syncs(db=db, settings=settings)
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        left = (await session.scalars(select(GitOAuthState.nonce))).all()
    # A live state must stay recorded, or its replay would be accepted.
    assert left == ["live"]
