"""Token authentication for provider APIs: refreshed before use when expiring and after a 401."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Protocol

import httpx


class TokenSource(Protocol):
    """Where a client's access token comes from."""

    @property
    def can_refresh(self) -> bool: ...

    async def token(self) -> str:
        """A token believed valid now (refreshed first if it is about to expire)."""
        ...

    async def refresh(self, rejected: str) -> str:
        """A new token after ``rejected`` was refused; raises ``ProviderError`` when impossible."""
        ...


class StaticToken:
    """A personal access token: used as is, never refreshed."""

    def __init__(self, token: str) -> None:
        self._token = token

    @property
    def can_refresh(self) -> bool:
        return False

    async def token(self) -> str:
        return self._token

    async def refresh(self, rejected: str) -> str:
        return self._token


class TokenAuth(httpx.Auth):
    """``Authorization: <scheme> <token>`` from a :class:`TokenSource`, retrying once after a 401.

    Async clients only: the refresh talks to the database and the provider.
    """

    def __init__(self, source: TokenSource, *, scheme: str = "Bearer") -> None:
        self.source = source
        self.scheme = scheme

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("TokenAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.source.token()
        request.headers["Authorization"] = f"{self.scheme} {token}"
        response = yield request
        if response.status_code == 401 and self.source.can_refresh:
            await response.aread()
            fresh = await self.source.refresh(token)
            request.headers["Authorization"] = f"{self.scheme} {fresh}"
            yield request
