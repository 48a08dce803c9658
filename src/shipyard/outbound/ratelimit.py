"""Waiting out providers' rate limits instead of failing on them (Git and CI/CD alike)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from shipyard.outbound.errors import UpstreamRateLimited

logger = logging.getLogger(__name__)

MAX_BACKOFF_DOUBLINGS = 6
# A barrier can only be extended so often; bounds the wait loop.
MAX_SLEEPS = 1000
RATE_LIMIT_WORDS = ("rate limit", "too many requests", "retry later", "abuse")


class RateLimitExhausted(UpstreamRateLimited):
    """The provider kept limiting us for longer than the caller may wait in total."""


@dataclass
class RateLimitGate:
    """Shared by every request of one provider client (one sync, one browse request, one step).

    A limited response (429, or 403 that says so) is retried after the time the provider asks
    for (``Retry-After``, ``x-ratelimit-reset``/``ratelimit-reset``), or with exponential back-off
    when it names none. A successful response reporting no requests left holds back the next
    ones until the reset. Each wait is capped by ``max_wait``, all of them by ``total_wait``.
    """

    max_wait: float
    total_wait: float
    backoff: float
    waited: float = 0.0
    waits: int = 0
    _blocked_until: float = 0.0

    async def before_request(self) -> None:
        """Wait while the provider told us to hold back (shared by concurrent requests)."""
        for _ in range(MAX_SLEEPS):
            delay = self._blocked_until - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    def retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying ``response``'s request, or None if it was not limited."""
        self._note_remaining(response)
        if not is_rate_limited(response):
            return None
        named = named_delay(response)
        if named is not None:
            return named
        return float(self.backoff * 2 ** min(attempt, MAX_BACKOFF_DOUBLINGS))

    async def wait(self, delay: float, *, url: str, provider: str | None = None) -> None:
        """Hold back every request of this gate for ``delay`` seconds, then return."""
        self._extend(delay, reason=f"rate limited on {url}", provider=provider)
        await self.before_request()

    def _note_remaining(self, response: httpx.Response) -> None:
        remaining = header_number(response, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is None or remaining > 0 or response.status_code >= 400:
            return
        reset_delay = reset_in(response)
        if reset_delay is not None:
            self._extend(reset_delay, reason="no requests left until the limit resets")

    def _extend(self, delay: float, *, reason: str, provider: str | None = None) -> None:
        # Concurrent page fetches limited together extend one barrier; the budget counts the
        # barrier's growth, not each waiter.
        now = time.monotonic()
        target = now + min(max(delay, 0.0), self.max_wait)
        extension = target - max(self._blocked_until, now)
        if extension <= 0:
            return
        if self.waited + extension > self.total_wait:
            raise RateLimitExhausted(
                f"{provider or 'the provider'} kept rate-limiting for over "
                f"{self.total_wait:g} s; the next attempt will continue",
                provider=provider,
            )
        logger.info("waiting %.2f s: %s", target - now, reason)
        self.waited += extension
        self.waits += 1
        self._blocked_until = target


def header_number(response: httpx.Response, *names: str) -> float | None:
    for name in names:
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            return float(value)
        except ValueError:
            continue
    return None


def reset_in(response: httpx.Response) -> float | None:
    """Seconds until the limit resets, from an epoch (GitHub, GitLab) or a delta header."""
    reset = header_number(response, "x-ratelimit-reset", "ratelimit-reset")
    if reset is None:
        return None
    # Epoch seconds are large; a small number is already a delay (RateLimit-Reset drafts).
    return max(reset - time.time(), 0.0) if reset > 1_000_000_000 else reset


def named_delay(response: httpx.Response) -> float | None:
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                return max(parsedate_to_datetime(retry_after).timestamp() - time.time(), 0.0)
    remaining = header_number(response, "x-ratelimit-remaining", "ratelimit-remaining")
    if remaining == 0:
        return reset_in(response)
    return None


def is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    if "retry-after" in response.headers:
        return True
    if header_number(response, "x-ratelimit-remaining", "ratelimit-remaining") == 0:
        return True
    # GitHub's secondary limits are a 403 whose message says so.
    try:
        text = response.text.lower()
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return False
    return any(word in text for word in RATE_LIMIT_WORDS)
