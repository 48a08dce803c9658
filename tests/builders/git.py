"""The ``git_sync`` builder: a fake Git provider connected through the API, then synced.

``git_sync`` composes ``client``, ``admin``, ``db``, ``settings`` and the provider fakes
(``fake_github`` / ``fake_gitlab`` / ``fake_gitea``, looked up by kind when first used)::

    provider = await git_sync.connect("github", user="octo", repositories=300)
    await git_sync.synced(provider)                 # sync now, checked to succeed
    fake.forge.revoke(provider.token)
    result = await git_sync.sync(provider)          # sync now, whatever the outcome
    stored = await git_sync.stored(provider)        # the GitProvider row
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.git.models import GitProvider, Repository
from shipyard.git.sync import SyncResult
from tests.fakes.common import FakeRepo
from tests.integration.git.helpers import (
    Fake,
    connect,
    drain_jobs,
    provider_row,
    repository_rows,
    run_sync,
)
from tests.support.api import Account


@dataclass
class ConnectedProvider:
    """A provider connected through the API, with the fake's user token and repositories."""

    kind: str
    fake: Fake
    token: str
    json: dict[str, Any]
    upstream: list[FakeRepo] = field(default_factory=list)

    @property
    def id(self) -> str:
        provider_id: str = self.json["id"]
        return provider_id


@dataclass
class GitSyncBuilder:
    """Connects provider fakes as ``admin`` and syncs them in the test, as the job does."""

    client: httpx.AsyncClient
    admin: Account
    db: Database
    settings: Settings
    request: pytest.FixtureRequest

    def fake(self, kind: str) -> Fake:
        """The test's fake for ``kind`` (github, gitlab, gitea)."""
        fake: Fake = self.request.getfixturevalue(f"fake_{kind}")
        return fake

    async def connect(
        self, kind: str, *, user: str = "ada", repositories: int = 0
    ) -> ConnectedProvider:
        """Add ``user`` (and ``repositories`` of theirs) upstream and connect it by token."""
        fake = self.fake(kind)
        token = fake.forge.add_user(user)
        upstream = fake.forge.add_many(repositories, owner=user) if repositories else []
        created = await connect(self.client, self.admin, kind, fake, token)
        return ConnectedProvider(kind, fake, token, created, upstream)

    async def sync(
        self, provider: ConnectedProvider, *, settings: Settings | None = None
    ) -> SyncResult:
        """Sync now, in the test (as the background job does); any outcome."""
        return await run_sync(self.db, settings or self.settings, self.admin, provider.id)

    async def synced(self, provider: ConnectedProvider) -> SyncResult:
        """Sync now, checked to end ``synced``."""
        result = await self.sync(provider)
        assert result.status == "synced", result
        return result

    async def drain_jobs(self) -> None:
        """Run workers until no job waits (the sync queued on connect, and what it queues)."""
        await drain_jobs(self.settings, self.db)

    async def stored(self, provider: ConnectedProvider) -> GitProvider:
        return await provider_row(self.db, self.admin, provider.id)

    async def rows(self, provider: ConnectedProvider) -> list[Repository]:
        """The provider's repository rows, read from the database."""
        return await repository_rows(self.db, self.admin, provider.id)

    async def shown(self, provider: ConnectedProvider) -> dict[str, Any]:
        """GET /git-providers/{id}."""
        response = await self.client.get(
            f"/api/v1/git-providers/{provider.id}", headers=self.admin.headers
        )
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()
        return shown

    async def ask_to_sync(self, provider: ConnectedProvider) -> httpx.Response:
        """POST /git-providers/{id}/sync."""
        return await self.client.post(
            f"/api/v1/git-providers/{provider.id}/sync", headers=self.admin.headers
        )


@pytest.fixture
def git_sync(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    request: pytest.FixtureRequest,
) -> GitSyncBuilder:
    return GitSyncBuilder(client, admin, db, settings, request)
