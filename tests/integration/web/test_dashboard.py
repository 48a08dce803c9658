"""The dashboard shows what is running, what failed this week, hosts by status and my pins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx

from shipyard.db import Database
from shipyard.deployments.models import Deployment
from shipyard.git.models import ProfileRepositoryPin, Repository
from shipyard.hosts.models import Host
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client


def _section(html: str, section_id: str) -> str:
    return html.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]


async def _seed(db: Database, account: Account, *, prefix: str) -> dict[str, UUID]:
    now = datetime.now(UTC)
    tenant_id, user_id = UUID(account.tenant_id), UUID(account.user_id)
    async with db.session(tenant_id=tenant_id, user_id=user_id) as session:
        repo = Repository(name=f"{prefix}-api", owner="acme", provider_type="url")
        other_repo = Repository(name=f"{prefix}-unpinned", provider_type="url")
        session.add_all([repo, other_repo])
        session.add_all(
            [
                Host(name=f"{prefix}-web-1", ip="127.0.0.1", status="online"),
                Host(name=f"{prefix}-web-2", ip="127.0.0.1", status="online"),
                Host(name=f"{prefix}-db-1", ip="127.0.0.1", status="offline"),
            ]
        )
        running = Deployment(name=f"{prefix} running", status="in_progress", started_at=now)
        failed = Deployment(
            name=f"{prefix} broke yesterday",
            status="failed",
            completed_at=now - timedelta(days=1),
        )
        old = Deployment(
            name=f"{prefix} broke long ago",
            status="partial",
            created_at=now - timedelta(days=9),
            completed_at=now - timedelta(days=8),
        )
        done = Deployment(name=f"{prefix} went fine", status="success", completed_at=now)
        session.add_all([running, failed, old, done])
        await session.flush()
        session.add(ProfileRepositoryPin(profile_id=user_id, repository_id=repo.id))
        return {"running": running.id, "failed": failed.id, "repo": repo.id}


async def test_dashboard_sections_show_the_right_things(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    ids = await _seed(db, admin, prefix="ours")
    await _seed(db, other_admin, prefix="theirs")
    async with browser_client(client, admin) as http:
        html = (await http.get("/")).text
    assert "theirs" not in html

    running = _section(html, "running")
    assert "ours running" in running
    assert f'href="/deployments/{ids["running"]}"' in running
    assert "went fine" not in running

    failed = _section(html, "failed")
    assert "ours broke yesterday" in failed
    assert 'data-status="failed"' in failed
    assert "broke long ago" not in failed

    recent = _section(html, "recent")
    for name in ("ours running", "ours broke yesterday", "ours went fine", "ours broke long ago"):
        assert name in recent

    hosts = _section(html, "hosts")
    assert 'data-status="online"></span>' not in hosts
    assert 'href="/hosts?status=online"' in hosts and "<strong>2</strong>" in hosts
    assert 'href="/hosts?status=offline"' in hosts and "<strong>1</strong>" in hosts

    pinned = _section(html, "pinned")
    assert "acme/ours-api" in pinned
    assert "unpinned" not in pinned


async def test_pins_are_personal_and_empty_states_are_clear(
    client: httpx.AsyncClient, db: Database, admin: Account, other_admin: Account
) -> None:
    async with browser_client(client, other_admin) as http:
        html = (await http.get("/")).text
    assert "Nothing is running right now" in html
    assert "No failed deployments in the last 7 days" in html
    assert "No hosts yet" in html and 'href="/hosts/new">add one' in html
    assert "You have not pinned a repository" in html

    await _seed(db, admin, prefix="ours")
    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        html = (await http.get("/")).text
    assert "You have not pinned a repository" in html
    assert "ours running" in html
