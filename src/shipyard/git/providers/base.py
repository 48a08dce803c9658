"""The one interface of Git providers; their HTTP goes through :mod:`shipyard.outbound.api`."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx

from shipyard.config import Settings
from shipyard.errors import ShipyardError
from shipyard.git.providers.auth import TokenAuth, TokenSource
from shipyard.git.providers.oauth import token_request
from shipyard.git.providers.types import (
    BlobEntry,
    Branch,
    EntryType,
    FileData,
    Listing,
    OAuthClient,
    RemoteRepository,
    RemoteUser,
    RepoRef,
    TokenSet,
    TreeEntry,
)
from shipyard.outbound.api import ProviderApi, RetryPolicy, decode_json
from shipyard.outbound.errors import MalformedResponse
from shipyard.outbound.ratelimit import RateLimitGate

logger = logging.getLogger(__name__)

# Bounds every pagination loop: 10,000 pages of 100 is a million repositories.
MAX_PAGES = 10_000


PageHandler = Callable[[int, list[Any]], Awaitable[None]]
RepositorySink = Callable[[list[RemoteRepository]], Awaitable[None]]


class ProviderClient(ABC):
    """One provider API, reached through an injected ``httpx.AsyncClient``."""

    type: ClassVar[str]
    default_server: ClassVar[str | None] = None
    auth_scheme: ClassVar[str] = "Bearer"
    per_page: ClassVar[int] = 100
    oauth_scopes: ClassVar[str] = ""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        settings: Settings,
        server_url: str | None = None,
        token: TokenSource | None = None,
        gate: RateLimitGate | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.server_url = (server_url or self.default_server or "").rstrip("/") or None
        self.auth = TokenAuth(token, scheme=self.auth_scheme) if token is not None else None
        self.gate = gate or gate_from_settings(settings)
        self.api = ProviderApi(
            http,
            label=urlsplit(self.api_base).netloc,
            provider_type=self.type,
            base_url=self.api_base,
            retry=RetryPolicy(settings.http_retry_seconds),
            gate=self.gate,
            headers={"Accept": "application/json"},
            auth=self.auth,
            timeout=settings.http_timeout,
            follow_redirects=True,
        )

    # -- addresses -------------------------------------------------------------------------
    @property
    @abstractmethod
    def api_base(self) -> str: ...

    @property
    @abstractmethod
    def web_base(self) -> str: ...

    # -- what every provider answers ---------------------------------------------------------
    @abstractmethod
    async def current_user(self) -> RemoteUser: ...

    @abstractmethod
    async def list_repositories(self, sink: RepositorySink | None = None) -> Listing:
        """Every repository the token sees; ``sink`` gets each page's as it arrives."""

    async def collect_repositories(
        self,
        path: str,
        params: dict[str, Any],
        sink: RepositorySink | None,
    ) -> Listing:
        collected: list[RemoteRepository] = []

        async def on_page(number: int, items: list[Any]) -> None:
            repositories = [self.repository(item) for item in items]
            collected.extend(repositories)
            if sink is not None:
                await sink(repositories)

        complete = await self.each_page(path, params, on_page)
        return Listing(collected, complete)

    @abstractmethod
    def repository(self, item: Any) -> RemoteRepository:
        """One repository of the provider's list, mapped onto Shipyard's columns."""

    @abstractmethod
    async def branches(self, repo: RepoRef) -> list[Branch]: ...

    @abstractmethod
    async def tree(self, repo: RepoRef, *, ref: str, path: str) -> list[TreeEntry]: ...

    @abstractmethod
    async def blobs(self, repo: RepoRef, *, ref: str) -> list[BlobEntry]: ...

    @abstractmethod
    async def read_file(
        self, repo: RepoRef, *, ref: str, path: str, max_bytes: int
    ) -> FileData: ...

    # -- repository webhooks (Shipyard's trigger URLs registered at the provider) ----------
    async def create_hook(self, repo: RepoRef, *, url: str, secret: str, events: list[str]) -> str:
        """Create a JSON push hook delivering to ``url`` signed with ``secret``; its id there.

        ``events`` are Shipyard's kinds (push, tag, release), mapped to the provider's.
        """
        raise NotImplementedError(f"{self.type} does not register webhooks")

    async def delete_hook(self, repo: RepoRef, hook_id: str) -> None:
        """Remove a hook created by :meth:`create_hook` (already gone: nothing to do)."""
        raise NotImplementedError(f"{self.type} does not register webhooks")

    async def send_json(self, method: str, path: str, body: Any | None = None) -> Any:
        """A write to the API (JSON in, JSON or nothing out), through the shared layer."""
        response = await self.api.request(method, self.url(path), json=body)
        if response.status_code == 204 or not response.content:
            return None
        return decode_json(response, self.host)

    # -- OAuth 2 authorization code ---------------------------------------------------------
    @property
    @abstractmethod
    def authorize_endpoint(self) -> str: ...

    @property
    @abstractmethod
    def token_endpoint(self) -> str: ...

    def authorize_url(self, client: OAuthClient, *, redirect_uri: str, state: str) -> str:
        params = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "state": state,
        }
        if self.oauth_scopes:
            params["scope"] = self.oauth_scopes
        return f"{self.authorize_endpoint}?{urlencode(params)}"

    async def exchange_code(self, client: OAuthClient, *, code: str, redirect_uri: str) -> TokenSet:
        return await token_request(
            self,
            client,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
        )

    async def refresh_tokens(self, client: OAuthClient, *, refresh_token: str) -> TokenSet:
        return await token_request(
            self, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    # -- HTTP ------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{self.api_base}{path}"

    def same_origin(self, url: str) -> bool:
        return self.api.same_origin(url)

    async def request(
        self, method: str, url: str, *, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send with auth through the shared provider-API layer; raise our error on failure."""
        return await self.api.request(method, url, params=params)

    @property
    def host(self) -> str:
        return self.api.host

    async def get_json(self, path_or_url: str, params: dict[str, Any] | None = None) -> Any:
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        return decode_json(await self.request("GET", url, params=params), self.host)

    def error_for(self, response: httpx.Response) -> ShipyardError:
        return self.api.error_for(response)

    # -- pagination ------------------------------------------------------------------------
    def page_params(self, page: int) -> dict[str, Any]:
        return {"page": page, "per_page": self.per_page}

    def total_pages(self, response: httpx.Response) -> int | None:
        """The number of pages when the first response tells it (then pages are fetched at once)."""
        return None

    def total_items(self, response: httpx.Response) -> int | None:
        return None

    def next_url(self, response: httpx.Response) -> str | None:
        link = response.links.get("next")
        return link.get("url") if link else None

    async def paginate(self, path: str, params: dict[str, Any]) -> tuple[list[Any], bool]:
        """Every item of a list endpoint; the flag is False when pages shifted while reading."""
        pages: dict[int, list[Any]] = {}

        async def keep(number: int, items: list[Any]) -> None:
            pages[number] = items

        complete = await self.each_page(path, params, keep)
        return [item for number in sorted(pages) for item in pages[number]], complete

    async def each_page(self, path: str, params: dict[str, Any], on_page: PageHandler) -> bool:
        """Hand every page of a list endpoint to ``on_page`` as it arrives (in any order).

        When the first answer tells the page count, the other pages are fetched at once, at
        most ``git_page_concurrency`` at a time; otherwise next-page links are followed. Returns
        False when pages shifted while reading (a short page before the last, or fewer items
        than the reported total): then what was read is not the whole list.
        """
        first = await self.request("GET", self.url(path), params={**params, **self.page_params(1)})
        sizes = {1: len(items := page_items(first))}
        await on_page(1, items)
        total_pages = self.total_pages(first)
        if total_pages is not None and total_pages > 1:
            sizes.update(
                await self._fetch_pages(path, params, min(total_pages, MAX_PAGES), on_page)
            )
        elif total_pages is None:
            response = first
            for number in range(2, MAX_PAGES + 1):
                url = self.next_url(response)
                if not url:
                    break
                response = await self.request("GET", url)
                items = page_items(response)
                sizes[number] = len(items)
                await on_page(number, items)
        ordered = [sizes[number] for number in sorted(sizes)]
        short_before_last = any(size < self.per_page for size in ordered[:-1])
        expected = self.total_items(first)
        return not short_before_last and (expected is None or sum(ordered) >= expected)

    async def _fetch_pages(
        self, path: str, params: dict[str, Any], total_pages: int, on_page: PageHandler
    ) -> dict[int, int]:
        semaphore = asyncio.Semaphore(self.settings.git_page_concurrency)

        async def fetch(page: int) -> int:
            async with semaphore:
                response = await self.request(
                    "GET", self.url(path), params={**params, **self.page_params(page)}
                )
            items = page_items(response)
            await on_page(page, items)
            return len(items)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = {page: group.create_task(fetch(page)) for page in range(2, total_pages + 1)}
        except* ShipyardError as errors:
            raise errors.exceptions[0] from None
        return {page: task.result() for page, task in tasks.items()}


def page_items(response: httpx.Response) -> list[Any]:
    body = decode_json(response)
    if not isinstance(body, list):
        raise MalformedResponse(
            f"{response.url.host} sent a {type(body).__name__} where a list was expected"
        )
    return body


def gate_from_settings(settings: Settings) -> RateLimitGate:
    """The rate-limit budget of a background sync (browsing uses a shorter one)."""
    return RateLimitGate(
        max_wait=settings.git_rate_limit_max_wait_seconds,
        total_wait=settings.git_rate_limit_total_wait_seconds,
        backoff=settings.git_rate_limit_backoff_seconds,
    )


def require(item: Any, key: str, kind: type | tuple[type, ...], *, where: str) -> Any:
    """``item[key]`` checked for type; a malformed provider answer is an error, not a crash."""
    if not isinstance(item, dict) or key not in item or not isinstance(item[key], kind):
        raise MalformedResponse(f"the provider's {where} has no valid '{key}'")
    return item[key]


def branch_of(item: Any, *, sha_key: str) -> Branch:
    """A branch list item; the commit's id is ``sha`` on GitHub and ``id`` on Gitea and GitLab."""
    return Branch(
        name=require(item, "name", str, where="branch"),
        commit_sha=optional_str(item.get("commit") or {}, sha_key),
        protected=bool(item.get("protected", False)),
    )


def optional_str(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) and value else None


__all__ = [
    "MAX_PAGES",
    "BlobEntry",
    "Branch",
    "EntryType",
    "FileData",
    "Listing",
    "MalformedResponse",
    "OAuthClient",
    "PageHandler",
    "ProviderClient",
    "RateLimitGate",
    "RemoteRepository",
    "RemoteUser",
    "RepoRef",
    "RepositorySink",
    "TokenSet",
    "TreeEntry",
    "branch_of",
    "decode_json",
    "gate_from_settings",
]
