"""Repository sync: every repository a provider's token sees, upserted in bulk."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import ShipyardError
from shipyard.git.models import GitProvider, Repository
from shipyard.git.providers import provider_client
from shipyard.git.providers.base import Listing, ProviderClient, RemoteRepository
from shipyard.git.providers.gitlab import GitLabClient
from shipyard.git.service import describe_failure
from shipyard.git.tokens import ProviderTokenSource
from shipyard.jobs import enqueue

logger = logging.getLogger(__name__)

UPSERT_CHUNK = 5000
LANGUAGE_CHUNK = 500
LANGUAGES_TASK = "git:fill_languages"
LANGUAGES_SQL = """
UPDATE repositories AS r SET language = l.language
FROM unnest(CAST(:external_ids AS text[]), CAST(:languages AS text[])) AS l(external_id, language)
WHERE r.provider_id = CAST(:provider_id AS uuid) AND r.external_id = l.external_id
"""
# A token the provider refuses will not start working by itself: the provider needs a new one.
UNCONFIGURING_CODES = {"provider_unauthorized", "provider_token_refresh_failed"}
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


@dataclass(frozen=True)
class SyncResult:
    provider_id: UUID
    status: str
    repositories: int = 0
    removed: int = 0
    error: str | None = None
    rate_limit_waits: int = 0


async def sync_provider(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    provider_id: UUID,
    http: httpx.AsyncClient | None = None,
) -> SyncResult:
    """Fetch the provider's repositories and make the table match them.

    Everything is fetched before anything is written, and the writes are one transaction, so a
    failure at any point leaves the previous data as it was and records the error.
    """
    async with db.session(tenant_id=tenant_id) as session:
        provider = await session.scalar(
            select(GitProvider).where(GitProvider.id == provider_id).with_for_update()
        )
        if provider is None:
            return SyncResult(provider_id, "missing")
        if not provider.access_token:
            provider.sync_status = "error"
            provider.error = "the provider has no token; connect it again"
            return SyncResult(provider_id, "error", error=provider.error)
        provider.sync_status = "syncing"
        provider.error = None
    if http is None:
        async with httpx.AsyncClient() as own_http:
            return await _sync(db, settings, provider, own_http)
    return await _sync(db, settings, provider, http)


async def _sync(
    db: Database, settings: Settings, provider: GitProvider, http: httpx.AsyncClient
) -> SyncResult:
    client = provider_client(
        provider.type,
        http=http,
        settings=settings,
        server_url=provider.server_url,
        token=ProviderTokenSource(db=db, settings=settings, http=http, provider=provider),
    )
    try:
        listing = await _fetch(db, client, provider)
    except Exception as exc:
        if not isinstance(exc, ShipyardError):
            logger.exception("git provider %s: sync failed", provider.id)
        return await _record_failure(db, provider, exc, client)
    try:
        async with db.session(tenant_id=provider.tenant_id) as session:
            removed = await write_listing(session, provider, listing)
    except Exception as exc:
        logger.exception("git provider %s: writing the sync failed", provider.id)
        return await _record_failure(db, provider, exc, client)
    logger.info(
        "git provider %s: synced %d repositories, removed %d",
        provider.id,
        len(listing.repositories),
        removed,
    )
    return SyncResult(
        provider.id,
        "synced",
        repositories=len(listing.repositories),
        removed=removed,
        error=None if listing.complete else INCOMPLETE_NOTE,
        rate_limit_waits=client.gate.waits,
    )


async def _fetch(db: Database, client: ProviderClient, provider: GitProvider) -> Listing:
    listing = await client.list_repositories()
    if not listing.complete:
        # Pages shift when repositories are created or deleted mid-read: read once more.
        listing = await client.list_repositories()
    return listing


async def write_listing(session: AsyncSession, provider: GitProvider, listing: Listing) -> int:
    """Upsert ``listing`` by (provider, provider's id); delete what it lacks when complete.

    Where the listing lacks languages (GitLab), a follow-up job looks them up for the projects
    that are new or active since the previous sync; the others keep the language they have.
    """
    now = datetime.now(UTC)
    unique = list({repo.external_id: repo for repo in listing.repositories}.values())
    wanted = await _needing_language(session, provider, unique)
    keep_unknown = any(not repo.language_known for repo in unique)
    statement = text(
        UPSERT_SQL.format(
            language="COALESCE(excluded.language, repositories.language)"
            if keep_unknown
            else "excluded.language"
        )
    )
    for start in range(0, len(unique), UPSERT_CHUNK):
        chunk = unique[start : start + UPSERT_CHUNK]
        await session.execute(
            statement,
            {
                "tenant_id": str(provider.tenant_id),
                "provider_id": str(provider.id),
                "provider_type": provider.type,
                "now": now,
                "external_ids": [repo.external_id for repo in chunk],
                "names": [repo.name for repo in chunk],
                "descriptions": [repo.description for repo in chunk],
                "owners": [repo.owner for repo in chunk],
                "urls": [repo.url for repo in chunk],
                "clone_urls": [repo.clone_url for repo in chunk],
                "is_private": [repo.is_private for repo in chunk],
                "default_branches": [repo.default_branch for repo in chunk],
                "languages": [repo.language for repo in chunk],
            },
        )
    removed = 0
    if listing.complete:
        result = await session.execute(
            text(DELETE_GONE_SQL), {"provider_id": str(provider.id), "now": now}
        )
        removed = int(getattr(result, "rowcount", 0) or 0)
    row = await session.scalar(
        select(GitProvider).where(GitProvider.id == provider.id).with_for_update()
    )
    if row is not None:
        row.last_synced = now
        row.sync_status = "synced"
        row.error = None if listing.complete else INCOMPLETE_NOTE
    if wanted:
        await enqueue(
            session,
            task=LANGUAGES_TASK,
            args={
                "tenant_id": str(provider.tenant_id),
                "provider_id": str(provider.id),
                "external_ids": wanted,
            },
            lock=f"git-languages:{provider.id}",
        )
    return removed


async def _needing_language(
    session: AsyncSession, provider: GitProvider, repositories: list[RemoteRepository]
) -> list[str]:
    unknown = [repo for repo in repositories if not repo.language_known]
    if not unknown:
        return []
    known = set(
        (
            await session.scalars(
                select(Repository.external_id).where(Repository.provider_id == provider.id)
            )
        ).all()
    )
    since = provider.last_synced
    return [
        repo.external_id
        for repo in unknown
        if repo.external_id not in known
        or since is None
        or repo.activity_at is None
        or repo.activity_at > since
    ]


async def fill_languages(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    provider_id: UUID,
    external_ids: list[str],
    http: httpx.AsyncClient | None = None,
) -> int:
    """Look up and store the main language of the given GitLab projects; returns how many."""
    async with db.session(tenant_id=tenant_id) as session:
        provider = await session.get(GitProvider, provider_id)
    if provider is None or not provider.access_token or provider.type != "gitlab":
        return 0
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient())
        client = provider_client(
            provider.type,
            http=http,
            settings=settings,
            server_url=provider.server_url,
            token=ProviderTokenSource(db=db, settings=settings, http=http, provider=provider),
        )
        assert isinstance(client, GitLabClient)
        stored = 0
        for start in range(0, len(external_ids), LANGUAGE_CHUNK):
            chunk = external_ids[start : start + LANGUAGE_CHUNK]
            try:
                languages = await client.languages(chunk)
            except ShipyardError as exc:
                logger.warning(
                    "git provider %s: language lookup failed (%s)", provider_id, exc.code
                )
                return stored
            async with db.session(tenant_id=tenant_id) as session:
                await session.execute(
                    text(LANGUAGES_SQL),
                    {
                        "provider_id": str(provider_id),
                        "external_ids": list(languages),
                        "languages": list(languages.values()),
                    },
                )
            stored += len(languages)
    return stored


async def _record_failure(
    db: Database, provider: GitProvider, exc: BaseException, client: ProviderClient
) -> SyncResult:
    message = describe_failure(exc)
    code = exc.code if isinstance(exc, ShipyardError) else "internal_error"
    async with db.session(tenant_id=provider.tenant_id) as session:
        row = await session.scalar(
            select(GitProvider).where(GitProvider.id == provider.id).with_for_update()
        )
        if row is not None:
            row.sync_status = "error"
            # A failed refresh already wrote the provider's own reason; keep it.
            if code != "provider_token_refresh_failed" or not row.error:
                row.error = message
            if code in UNCONFIGURING_CODES:
                row.is_configured = False
    logger.warning("git provider %s: sync failed (%s)", provider.id, code)
    return SyncResult(provider.id, "error", error=message, rate_limit_waits=client.gate.waits)
