"""Small helpers shared by the git tests: connect a fake provider, sync it, read everything back."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

import httpx
from sqlalchemy import func, select, text

from shipyard.accounts.models import AuditEvent
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.models import GitProvider, ProfileRepositoryPin, Repository
from shipyard.git.sync import SyncResult, sync_provider
from tests.fakes.common import Forge
from tests.support.api import Account
from tests.support.runtime import run_worker_until_idle


class Fake(Protocol):
    forge: Forge

    @property
    def server_url(self) -> str: ...


async def connect(
    client: httpx.AsyncClient, account: Account, kind: str, fake: Fake, token: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/git-providers",
        headers=account.headers,
        json={"type": kind, "server_url": fake.server_url, "access_token": token},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def run_sync(
    db: Database, settings: Settings, account: Account, provider_id: str
) -> SyncResult:
    return await sync_provider(
        db=db,
        settings=settings,
        tenant_id=UUID(account.tenant_id),
        provider_id=UUID(provider_id),
    )


async def drain_jobs(settings: Settings, db: Database) -> None:
    """Run workers until no job is waiting (a job may queue another as it finishes)."""
    for _ in range(10):
        await run_worker_until_idle(settings, db, concurrency=2)
        async with db.session(system=True) as session:
            waiting = await session.scalar(
                text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")
            )
        if not waiting:
            return
    raise AssertionError("jobs kept coming")


async def all_repositories(
    client: httpx.AsyncClient, account: Account, **params: Any
) -> list[dict[str, Any]]:
    """Every page of GET /repositories."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/repositories", headers=account.headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


async def provider_row(db: Database, account: Account, provider_id: str) -> GitProvider:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        provider = await session.get(GitProvider, UUID(provider_id))
        assert provider is not None
        return provider


async def repository_rows(db: Database, account: Account, provider_id: str) -> list[Repository]:
    async with db.session(tenant_id=UUID(account.tenant_id)) as session:
        rows = await session.scalars(
            select(Repository).where(Repository.provider_id == UUID(provider_id))
        )
        return list(rows.all())


async def pin_count(db: Database) -> int:
    async with db.session(system=True) as session:
        return int(
            await session.scalar(select(func.count()).select_from(ProfileRepositoryPin)) or 0
        )


async def audit_rows(db: Database, action: str) -> list[AuditEvent]:
    """Every audit entry recorded for ``action``, oldest first, across tenants."""
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.outcome == "success")
            .order_by(AuditEvent.created_at)
        )
        return list(rows.all())


async def one_audit_row(db: Database, action: str, account: Account) -> AuditEvent:
    """The one entry for ``action``, checked to name ``account`` as the actor, in its tenant."""
    rows = await audit_rows(db, action)
    assert len(rows) == 1, [(row.action, row.details) for row in rows]
    row = rows[0]
    assert str(row.actor_profile_id) == account.user_id
    assert str(row.tenant_id) == account.tenant_id
    assert row.ip_address
    return row
