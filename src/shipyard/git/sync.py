"""Repository sync: every repository a provider's token sees, upserted in bulk."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from uuid import UUID

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import ShipyardError
from shipyard.git.models import GitProvider
from shipyard.git.providers import provider_client
from shipyard.git.providers.base import Listing, ProviderClient
from shipyard.git.providers.gitlab import GitLabClient
from shipyard.git.service import describe_failure
from shipyard.git.sync_writer import INCOMPLETE_NOTE, ListingWriter
from shipyard.git.tokens import ProviderTokenSource
from shipyard.notifications.events import Event, emit
from shipyard.outbound.client import build_http_client

logger = logging.getLogger(__name__)

LANGUAGE_CHUNK = 500
LANGUAGES_SQL = """
UPDATE repositories AS r SET language = l.language
FROM unnest(CAST(:external_ids AS text[]), CAST(:languages AS text[])) AS l(external_id, language)
WHERE r.provider_id = CAST(:provider_id AS uuid) AND r.external_id = l.external_id
"""
# A token the provider refuses will not start working by itself: the provider needs a new one.
UNCONFIGURING_CODES = {"provider_unauthorized", "provider_token_refresh_failed"}


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

    Pages are upserted as they arrive, all in one transaction that commits only once the whole
    list was read: a failure at any point rolls it back, leaves the previous data as it was and
    records the error on the provider.
    """
    async with db.session(tenant_id=tenant_id) as session:
        provider = await session.scalar(
            select(GitProvider).where(GitProvider.id == provider_id).with_for_update(key_share=True)
        )
        if provider is None:
            return SyncResult(provider_id, "missing")
        # Notifications (issue 15): a failure is news only when the last sync did not fail.
        failing_before = provider.sync_status == "error"
        if not provider.access_token:
            provider.sync_status = "error"
            provider.error = "the provider has no token; connect it again"
            if not failing_before:
                await _notify_failure(session, provider)
            return SyncResult(provider_id, "error", error=provider.error)
        provider.sync_status = "syncing"
        provider.error = None
    if http is None:
        async with build_http_client(settings) as own_http:
            return await _sync(db, settings, provider, own_http, failing_before=failing_before)
    return await _sync(db, settings, provider, http, failing_before=failing_before)


async def _sync(
    db: Database,
    settings: Settings,
    provider: GitProvider,
    http: httpx.AsyncClient,
    *,
    failing_before: bool = False,
) -> SyncResult:
    client = provider_client(
        provider.type,
        http=http,
        settings=settings,
        server_url=provider.server_url,
        token=ProviderTokenSource(db=db, settings=settings, http=http, provider=provider),
    )
    try:
        # One transaction for every write: a failure anywhere rolls it all back.
        async with (
            db.session(tenant_id=provider.tenant_id) as session,
            ListingWriter(session, provider) as writer,
        ):
            listing = await client.list_repositories(writer.add)
            if not listing.complete:
                # Pages shift when repositories come or go mid-read: read once more.
                listing = await client.list_repositories(writer.add)
            removed = await writer.finish(complete=listing.complete)
            count = len(writer.seen)
    except Exception as exc:
        if not isinstance(exc, ShipyardError):
            logger.exception("git provider %s: sync failed", provider.id)
        return await _record_failure(db, provider, exc, client, failing_before=failing_before)
    logger.info("git provider %s: synced %d repositories, removed %d", provider.id, count, removed)
    return SyncResult(
        provider.id,
        "synced",
        repositories=count,
        removed=removed,
        error=None if listing.complete else INCOMPLETE_NOTE,
        rate_limit_waits=client.gate.waits,
    )


async def write_listing(session: AsyncSession, provider: GitProvider, listing: Listing) -> int:
    """Write a whole listing at once (what a sync does page by page); returns rows removed."""
    async with ListingWriter(session, provider) as writer:
        await writer.add(listing.repositories)
        return await writer.finish(complete=listing.complete)


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
            http = await stack.enter_async_context(build_http_client(settings))
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


async def _notify_failure(session: AsyncSession, provider: GitProvider) -> None:
    """``provider.sync_failed``: a sync failed after one that did not."""
    await emit(
        session,
        Event(
            name="provider.sync_failed",
            tenant_id=provider.tenant_id,
            subject_type="git_provider",
            subject_id=provider.id,
            title=f"Git provider {provider.name or provider.display_name or provider.type}",
            status="error",
            triggered_by="repository sync",
            path="/providers",
            detail=provider.error,
        ),
    )


async def _record_failure(
    db: Database,
    provider: GitProvider,
    exc: BaseException,
    client: ProviderClient,
    *,
    failing_before: bool = False,
) -> SyncResult:
    message = describe_failure(exc)
    code = exc.code if isinstance(exc, ShipyardError) else "internal_error"
    async with db.session(tenant_id=provider.tenant_id) as session:
        row = await session.scalar(
            select(GitProvider).where(GitProvider.id == provider.id).with_for_update(key_share=True)
        )
        if row is not None:
            row.sync_status = "error"
            # A failed refresh already wrote the provider's own reason; keep it.
            if code != "provider_token_refresh_failed" or not row.error:
                row.error = message
            if code in UNCONFIGURING_CODES:
                row.is_configured = False
            if not failing_before:  # notify once per transition into failure
                await _notify_failure(session, row)
    logger.warning("git provider %s: sync failed (%s)", provider.id, code)
    return SyncResult(provider.id, "error", error=message, rate_limit_waits=client.gate.waits)
