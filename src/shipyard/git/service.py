"""Git providers in the database: list, store a checked connection, update, delete, queue syncs.

Service functions: they take a session and never call the network (checking a token against
the provider is :mod:`shipyard.git.flows`).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor, Principal
from shipyard.config import Settings
from shipyard.errors import Conflict, NotFound, ShipyardError, ValidationFailed
from shipyard.git.models import GitProvider, Repository
from shipyard.git.providers import normalise_server_url
from shipyard.git.providers.base import RemoteUser
from shipyard.git.providers.ratelimit import RateLimitGate
from shipyard.git.schemas import (
    GitProviderCreate,
    GitProviderRead,
    GitProviderUpdate,
    SyncQueued,
)
from shipyard.jobs import enqueue
from shipyard.pagination import paginate

logger = logging.getLogger(__name__)

SYNC_TASK = "git:sync_provider"
# A person is waiting on these requests: wait out a short rate limit, not a long one.
INTERACTIVE_MAX_WAIT_SECONDS = 10.0
INTERACTIVE_TOTAL_WAIT_SECONDS = 30.0


def interactive_gate(settings: Settings) -> RateLimitGate:
    return RateLimitGate(
        max_wait=min(settings.git_rate_limit_max_wait_seconds, INTERACTIVE_MAX_WAIT_SECONDS),
        total_wait=min(settings.git_rate_limit_total_wait_seconds, INTERACTIVE_TOTAL_WAIT_SECONDS),
        backoff=min(settings.git_rate_limit_backoff_seconds, 2.0),
    )


def sync_lock(provider_id: UUID) -> str:
    return f"git-sync:{provider_id}"


def provider_read(provider: GitProvider, repository_count: int = 0) -> GitProviderRead:
    return GitProviderRead.model_validate(
        {
            "id": provider.id,
            "type": provider.type,
            "name": provider.name,
            "display_name": provider.display_name,
            "server_url": provider.server_url,
            "is_configured": provider.is_configured,
            "has_access_token": bool(provider.access_token),
            "has_refresh_token": bool(provider.refresh_token),
            "expires_at": provider.expires_at,
            "last_synced": provider.last_synced,
            "sync_status": provider.sync_status,
            "error": provider.error,
            "repository_count": repository_count,
            "created_at": provider.created_at,
            "updated_at": provider.updated_at,
        }
    )


async def get_provider(
    session: AsyncSession, principal: Principal, provider_id: UUID, *, for_update: bool = False
) -> GitProvider:
    statement = select(GitProvider).where(
        GitProvider.id == provider_id, GitProvider.tenant_id == principal.tenant_id
    )
    if for_update:
        statement = statement.with_for_update(key_share=True)
    provider = await session.scalar(statement)
    if provider is None:
        raise NotFound("git provider not found", code="git_provider_not_found")
    return provider


async def repository_counts(*, session: AsyncSession, provider_ids: list[UUID]) -> dict[UUID, int]:
    if not provider_ids:
        return {}
    rows = await session.execute(
        select(Repository.provider_id, func.count())
        .where(Repository.provider_id.in_(provider_ids))
        .group_by(Repository.provider_id)
    )
    return {provider_id: count for provider_id, count in rows.all() if provider_id}


async def list_providers(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[GitProviderRead], str | None]:
    rows, next_cursor = await paginate(
        session,
        select(GitProvider).where(GitProvider.tenant_id == principal.tenant_id),
        created_at=GitProvider.created_at,
        row_id=GitProvider.id,
        limit=limit,
        cursor=cursor,
    )
    counts = await repository_counts(session=session, provider_ids=[row.id for row in rows])
    return [provider_read(row, counts.get(row.id, 0)) for row in rows], next_cursor


async def read_provider(
    *, session: AsyncSession, principal: Principal, provider_id: UUID
) -> GitProviderRead:
    provider = await get_provider(session, principal, provider_id)
    counts = await repository_counts(session=session, provider_ids=[provider.id])
    return provider_read(provider, counts.get(provider.id, 0))


async def refuse_duplicate(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    provider_type: str,
    server_url: str | None,
    login: str,
    exclude: UUID | None = None,
) -> None:
    """A Conflict when the tenant already connected the account ``login`` at that server."""
    statement = select(GitProvider.id).where(
        GitProvider.tenant_id == tenant_id,
        GitProvider.type == provider_type,
        GitProvider.server_url.is_(None)
        if server_url is None
        else GitProvider.server_url == server_url,
        GitProvider.name == login,
    )
    if exclude is not None:
        statement = statement.where(GitProvider.id != exclude)
    if await session.scalar(statement) is not None:
        raise Conflict(
            f"the {provider_type} account '{login}' is already connected", code="provider_exists"
        )


async def add_provider(
    *,
    session: AsyncSession,
    actor: Actor,
    data: GitProviderCreate,
    server_url: str | None,
    user: RemoteUser,
) -> GitProviderRead:
    """Store a connection whose token was checked as ``user``'s, and queue its first sync."""
    await refuse_duplicate(
        session=session,
        tenant_id=actor.tenant_id,
        provider_type=data.type,
        server_url=server_url,
        login=user.login,
    )
    provider = GitProvider(
        tenant_id=actor.tenant_id,
        profile_id=actor.user_id,
        type=data.type,
        server_url=server_url,
        name=user.login,
        display_name=data.display_name or user.name or user.login,
        access_token=data.access_token,
        is_configured=True,
        sync_status="pending",
    )
    session.add(provider)
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="git_provider.create",
        resource_type="git_provider",
        resource_id=provider.id,
        details={"type": data.type, "server_url": server_url, "name": user.login},
    )
    await queue_sync(session=session, provider=provider)
    await session.flush()
    await session.refresh(provider)
    return provider_read(provider)


async def update_provider(
    *,
    session: AsyncSession,
    actor: Actor,
    provider_id: UUID,
    data: GitProviderUpdate,
    user: RemoteUser | None = None,
) -> GitProviderRead:
    """Rename, or store the new token ``data`` carries (already checked as ``user``'s), at
    the new ``server_url`` when it moves (which needs that token)."""
    provider = await get_provider(session, actor.principal, provider_id, for_update=True)
    changed: dict[str, Any] = {}
    if "server_url" in data.model_fields_set:
        server_url = normalise_server_url(provider.type, data.server_url)
        if server_url != provider.server_url:
            require_token_for_move(data)
            provider.server_url = server_url
            changed["server_url"] = server_url
    if "display_name" in data.model_fields_set:
        provider.display_name = data.display_name or provider.name
        changed["display_name"] = provider.display_name
    if data.access_token is not None:
        if user is None:
            raise ValueError("a new token is stored only once checked against the provider")
        await refuse_duplicate(
            session=session,
            tenant_id=actor.tenant_id,
            provider_type=provider.type,
            server_url=provider.server_url,
            login=user.login,
            exclude=provider.id,
        )
        # A personal token replaces whatever OAuth grant there was.
        provider.access_token = data.access_token
        provider.refresh_token = None
        provider.expires_at = None
        provider.name = user.login
        provider.is_configured = True
        provider.error = None
        changed["access_token"] = "replaced"
    await session.flush()
    await session.refresh(provider)
    await audit(
        session,
        actor=actor,
        action="git_provider.update",
        resource_type="git_provider",
        resource_id=provider.id,
        details=changed,
    )
    return await read_provider(session=session, principal=actor.principal, provider_id=provider.id)


def require_token_for_move(data: GitProviderUpdate) -> None:
    """A provider moving to another server takes no stored token (or OAuth grant) with it."""
    if data.access_token is None:
        raise ValidationFailed(
            "changing server_url needs access_token in the same request: a stored token is only "
            "ever sent to the server it was given for",
            field="access_token",
            code="credentials_required",
        )


async def delete_provider(*, session: AsyncSession, actor: Actor, provider_id: UUID) -> None:
    """Delete a connection; its repositories and their pins go with it."""
    provider = await get_provider(session, actor.principal, provider_id, for_update=True)
    await session.delete(provider)
    await audit(
        session,
        actor=actor,
        action="git_provider.delete",
        resource_type="git_provider",
        resource_id=provider_id,
        details={"type": provider.type, "name": provider.name},
    )
    await session.flush()


async def queue_sync(*, session: AsyncSession, provider: GitProvider) -> bool:
    """Queue a sync in the caller's transaction; False when one is already waiting."""
    try:
        async with session.begin_nested():
            await enqueue(
                session,
                task=SYNC_TASK,
                args={"tenant_id": str(provider.tenant_id), "provider_id": str(provider.id)},
                lock=sync_lock(provider.id),
                queueing_lock=sync_lock(provider.id),
            )
    except IntegrityError:
        return False
    if provider.sync_status != "syncing":
        provider.sync_status = "pending"
    return True


async def request_sync(*, session: AsyncSession, actor: Actor, provider_id: UUID) -> SyncQueued:
    """Queue a sync now; ``queued`` is false when one is already waiting."""
    provider = await get_provider(session, actor.principal, provider_id, for_update=True)
    if not provider.access_token:
        raise Conflict(
            "the provider has no token; connect it again before syncing",
            code="provider_not_configured",
        )
    queued = await queue_sync(session=session, provider=provider)
    await audit(
        session,
        actor=actor,
        action="git_provider.sync",
        resource_type="git_provider",
        resource_id=provider.id,
        details={"queued": queued},
    )
    await session.flush()
    return SyncQueued(
        provider_id=provider.id, sync_status=provider.sync_status or "pending", queued=queued
    )


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ShipyardError):
        return exc.message
    return f"unexpected error: {type(exc).__name__}"
