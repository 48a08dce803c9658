"""A provider's stored token: refreshed before it expires and after a 401, saved at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from shipyard.config import Settings
from shipyard.db import Scope, set_scope
from shipyard.errors import NotFound, ProviderError
from shipyard.git.models import GitOAuthApp, GitProvider
from shipyard.git.providers import provider_client, server_key
from shipyard.git.providers.base import OAuthClient, TokenSet
from shipyard.git.providers.oauth import OAuthFailed

logger = logging.getLogger(__name__)

# Refresh this long before the stated expiry, so a request never races the clock.
REFRESH_MARGIN = timedelta(seconds=60)


class TokenRefreshFailed(ProviderError):
    code = "provider_token_refresh_failed"


def is_expiring(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at - REFRESH_MARGIN <= datetime.now(UTC)


class SessionOpener(Protocol):
    """What the token source needs of a database: its own short tenant-scoped transactions."""

    def session(
        self, *, tenant_id: UUID | None = None, user_id: UUID | None = None, system: bool = False
    ) -> AbstractAsyncContextManager[AsyncSession]: ...


class EngineSessions:
    """Transactions on the engine of an existing session, scoped like ``Database.session``.

    Lets code that only holds a request's session save refreshed tokens in a transaction of
    their own (a rollback of the request must not lose a rotated refresh token).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def of(cls, session: AsyncSession) -> EngineSessions:
        bind = session.bind
        if isinstance(bind, AsyncConnection):
            return cls(bind.engine)
        if isinstance(bind, AsyncEngine):
            return cls(bind)
        raise RuntimeError("the session is not bound to an engine")

    @contextlib.asynccontextmanager
    async def session(
        self, *, tenant_id: UUID | None = None, user_id: UUID | None = None, system: bool = False
    ) -> AsyncIterator[AsyncSession]:
        async with self._sessionmaker() as session:
            set_scope(session, Scope(tenant_id=tenant_id, user_id=user_id, system=system))
            async with session.begin():
                yield session


class ProviderTokenSource:
    """The access token of one ``git_providers`` row, kept fresh.

    A refresh locks the row (``SELECT ... FOR UPDATE``) in its own transaction, so concurrent
    requests and workers refresh once — providers that rotate refresh tokens (GitLab) would
    otherwise see the second refresh as a replay. The new tokens are committed immediately: a
    later failure of the caller's transaction cannot lose them. A refresh the provider refuses
    marks the provider not configured, with the provider's reason in ``error``.
    """

    def __init__(
        self,
        *,
        db: SessionOpener,
        settings: Settings,
        http: httpx.AsyncClient,
        provider: GitProvider,
    ) -> None:
        self._db = db
        self._settings = settings
        self._http = http
        self._tenant_id: UUID = provider.tenant_id
        self._provider_id: UUID = provider.id
        self._type = provider.type
        self._server_url = provider.server_url
        self._access = provider.access_token or ""
        self._refresh = provider.refresh_token
        self._expires_at = provider.expires_at
        self._lock = asyncio.Lock()

    @property
    def can_refresh(self) -> bool:
        return bool(self._refresh)

    async def token(self) -> str:
        if self._refresh and is_expiring(self._expires_at):
            return await self.refresh(self._access)
        return self._access

    async def refresh(self, rejected: str) -> str:
        async with self._lock:
            if self._access != rejected and not is_expiring(self._expires_at):
                return self._access
            failure: str | None = None
            async with self._db.session(tenant_id=self._tenant_id) as session:
                provider = await session.scalar(
                    select(GitProvider)
                    .where(GitProvider.id == self._provider_id)
                    .with_for_update(key_share=True)
                )
                if provider is None:
                    raise NotFound("git provider not found")
                if (
                    provider.access_token
                    and provider.access_token != rejected
                    and not is_expiring(provider.expires_at)
                ):
                    # Another request or worker refreshed while we waited for the lock.
                    self._adopt(provider)
                    return self._access
                try:
                    tokens = await self._request_refresh(session, provider)
                except OAuthFailed as exc:
                    failure = exc.reason
                except TokenRefreshFailed as exc:
                    failure = exc.message
                if failure is not None:
                    provider.is_configured = False
                    provider.error = f"token refresh failed: {failure}"
                    logger.warning("git provider %s: token refresh failed", provider.id)
                else:
                    provider.access_token = tokens.access_token
                    provider.refresh_token = tokens.refresh_token or provider.refresh_token
                    provider.expires_at = tokens.expires_at
                    provider.is_configured = True
                    self._adopt(provider)
            if failure is not None:
                raise TokenRefreshFailed(
                    f"the provider refused to refresh the token: {failure}; connect it again"
                )
            return self._access

    def _adopt(self, provider: GitProvider) -> None:
        self._access = provider.access_token or ""
        self._refresh = provider.refresh_token
        self._expires_at = provider.expires_at

    async def _request_refresh(self, session: AsyncSession, provider: GitProvider) -> TokenSet:
        if not provider.refresh_token:
            raise TokenRefreshFailed("the token was refused and there is no refresh token")
        app = await session.scalar(
            select(GitOAuthApp).where(
                GitOAuthApp.type == provider.type,
                GitOAuthApp.server_url == server_key(provider.type, provider.server_url),
            )
        )
        if app is None:
            raise TokenRefreshFailed(
                f"no OAuth application is configured for {provider.type} at "
                f"{server_key(provider.type, provider.server_url)}"
            )
        client = provider_client(
            provider.type, http=self._http, settings=self._settings, server_url=provider.server_url
        )
        return await client.refresh_tokens(
            OAuthClient(client_id=app.client_id, client_secret=app.client_secret),
            refresh_token=provider.refresh_token,
        )
