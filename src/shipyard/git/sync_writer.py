"""Writing a provider's repositories as its pages arrive: bulk upserts in one transaction."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.git.models import GitProvider, Repository
from shipyard.git.providers.base import RemoteRepository
from shipyard.jobs import enqueue

UPSERT_BATCH = 1000
LANGUAGES_TASK = "git:fill_languages"
INCOMPLETE_NOTE = (
    "the provider's list changed while it was read; repositories missing from it are kept "
    "until the next sync"
)
UPSERT_SQL = """
INSERT INTO repositories (
    tenant_id, provider_id, provider_type, external_id, name, description, owner, url,
    clone_url, is_private, default_branch, language, sync_status, last_synced_at, error
)
SELECT
    CAST(:tenant_id AS uuid), CAST(:provider_id AS uuid), :provider_type, r.external_id, r.name,
    r.description, r.owner, r.url, r.clone_url, r.is_private, r.default_branch, r.language,
    'synced', :now, NULL
FROM unnest(
    CAST(:external_ids AS text[]), CAST(:names AS text[]), CAST(:descriptions AS text[]),
    CAST(:owners AS text[]), CAST(:urls AS text[]), CAST(:clone_urls AS text[]),
    CAST(:is_private AS boolean[]), CAST(:default_branches AS text[]), CAST(:languages AS text[])
) AS r(external_id, name, description, owner, url, clone_url, is_private, default_branch, language)
ON CONFLICT (provider_id, external_id) DO UPDATE SET
    provider_type = excluded.provider_type,
    name = excluded.name,
    description = excluded.description,
    owner = excluded.owner,
    url = excluded.url,
    clone_url = excluded.clone_url,
    is_private = excluded.is_private,
    default_branch = excluded.default_branch,
    language = {language},
    sync_status = 'synced',
    last_synced_at = excluded.last_synced_at,
    error = NULL
"""
# Rows of the provider this sync did not touch are gone upstream; their pins cascade.
DELETE_GONE_SQL = """
DELETE FROM repositories
WHERE provider_id = CAST(:provider_id AS uuid)
  AND (last_synced_at IS NULL OR last_synced_at < :now)
"""


class ListingWriter:
    """Upserts repositories by (provider, provider's id) while the pages are still arriving.

    Use as ``async with ListingWriter(session, provider) as writer``: hand it pages with
    :meth:`add` (from concurrent fetches), then call :meth:`finish`. One background task writes
    batches in the caller's transaction, so database time overlaps the network's; if anything
    fails, the caller's transaction rolls back and the previous data stays as it was.
    """

    def __init__(
        self, session: AsyncSession, provider: GitProvider, *, batch: int = UPSERT_BATCH
    ) -> None:
        self.session = session
        self.provider = provider
        self.batch = batch
        self.now = datetime.now(UTC)
        self.seen: set[str] = set()
        self.wanted_languages: list[str] = []
        self._known: set[str] = set()
        self._pending: list[RemoteRepository] = []
        self._queue: asyncio.Queue[list[RemoteRepository] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ListingWriter:
        # Before any upsert: which rows exist decides which GitLab languages to look up.
        rows = await self.session.scalars(
            select(Repository.external_id).where(Repository.provider_id == self.provider.id)
        )
        self._known = {external_id for external_id in rows.all() if external_id is not None}
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def add(self, repositories: list[RemoteRepository]) -> None:
        if self._task is not None and self._task.done():
            # The writer failed: stop fetching and surface its error.
            self._task.result()
        self._pending.extend(repositories)
        if len(self._pending) >= self.batch:
            self._queue.put_nowait(self._pending)
            self._pending = []

    async def finish(self, *, complete: bool) -> int:
        """Write what is left, remove what is gone (only when ``complete``); returns removed."""
        assert self._task is not None
        if self._pending:
            self._queue.put_nowait(self._pending)
            self._pending = []
        self._queue.put_nowait(None)
        await self._task
        removed = 0
        if complete:
            result = await self.session.execute(
                text(DELETE_GONE_SQL), {"provider_id": str(self.provider.id), "now": self.now}
            )
            removed = int(getattr(result, "rowcount", 0) or 0)
        row = await self.session.scalar(
            select(GitProvider)
            .where(GitProvider.id == self.provider.id)
            .with_for_update(key_share=True)
        )
        if row is not None:
            row.last_synced = self.now
            row.sync_status = "synced"
            row.error = None if complete else INCOMPLETE_NOTE
        if self.wanted_languages:
            await enqueue(
                self.session,
                task=LANGUAGES_TASK,
                args={
                    "tenant_id": str(self.provider.tenant_id),
                    "provider_id": str(self.provider.id),
                    "external_ids": sorted(set(self.wanted_languages)),
                },
                lock=f"git-languages:{self.provider.id}",
            )
        return removed

    async def _run(self) -> None:
        while True:
            batch = await self._queue.get()
            if batch is None:
                return
            await self._upsert(batch)

    def _needs_language(self, repository: RemoteRepository) -> bool:
        since = self.provider.last_synced
        return (
            repository.external_id not in self._known
            or since is None
            or repository.activity_at is None
            or repository.activity_at > since
        )

    async def _upsert(self, batch: list[RemoteRepository]) -> None:
        # One statement may not touch a row twice: keep the last copy of each.
        unique = list({repo.external_id: repo for repo in batch}.values())
        self.seen.update(repo.external_id for repo in unique)
        unknown = [repo for repo in unique if not repo.language_known]
        self.wanted_languages.extend(r.external_id for r in unknown if self._needs_language(r))
        language = (
            "COALESCE(excluded.language, repositories.language)" if unknown else "excluded.language"
        )
        await self.session.execute(
            text(UPSERT_SQL.format(language=language)),
            {
                "tenant_id": str(self.provider.tenant_id),
                "provider_id": str(self.provider.id),
                "provider_type": self.provider.type,
                "now": self.now,
                "external_ids": [repo.external_id for repo in unique],
                "names": [repo.name for repo in unique],
                "descriptions": [repo.description for repo in unique],
                "owners": [repo.owner for repo in unique],
                "urls": [repo.url for repo in unique],
                "clone_urls": [repo.clone_url for repo in unique],
                "is_private": [repo.is_private for repo in unique],
                "default_branches": [repo.default_branch for repo in unique],
                "languages": [repo.language for repo in unique],
            },
        )
