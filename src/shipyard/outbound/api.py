"""The one layer under every provider client: retries, rate limits, and errors mapped once.

Git providers (GitHub, GitLab, Gitea) and CI/CD providers (Jenkins, GitHub Actions, CircleCI)
all send their requests through :class:`ProviderApi`. It

- retries what can be retried within a time budget, with exponential backoff: connection
  failures always (nothing was sent), timeouts and 5xx only for idempotent requests, and
  429/502/503/504 even for a trigger (the provider did not act on it);
- waits out rate limits through a shared :class:`RateLimitGate` (``Retry-After``,
  ``x-ratelimit-remaining``/``-reset``, ``ratelimit-reset``; 429 and 403-that-says-so);
- turns every other upstream answer into one of :mod:`shipyard.outbound.errors`, with the
  provider's own reason, secrets masked.

Tests pass an ``httpx.AsyncClient(transport=httpx.MockTransport(...))`` as the seam.
"""

from __future__ import annotations

import asyncio
import html
import json as jsonlib
import logging
import re
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from shipyard import metrics
from shipyard.outbound.errors import (
    CredentialsRefused,
    MalformedResponse,
    UpstreamError,
    UpstreamFailed,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnreachable,
)
from shipyard.outbound.masking import Masker
from shipyard.outbound.ratelimit import RateLimitGate, header_number, is_rate_limited

logger = logging.getLogger(__name__)

# Statuses that mean "the request was not processed; try again" even for a non-idempotent POST.
NOT_PROCESSED = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A provider that keeps answering "rate limited, retry now" must not keep us looping.
MAX_RATE_LIMIT_RETRIES = 50
MAX_REASON_LENGTH = 300
_TAGS = re.compile(r"<(script|style|head)\b.*?</\1>|<[^>]+>", re.S | re.I)


@dataclass(frozen=True)
class RetryPolicy:
    """How long transient failures are retried, and the backoff between attempts."""

    seconds: float
    first_backoff: float = 0.25
    max_backoff: float = 8.0


def segment(value: str) -> str:
    """One URL path segment, quoted: ``a/b c`` -> ``a%2Fb%20c``."""
    return quote(value, safe="")


def segments(value: str) -> str:
    """A slash-separated name (``owner/repo``, a file path) with each segment quoted."""
    return "/".join(segment(part) for part in value.split("/"))


def response_reason(response: httpx.Response, masker: Masker | None = None) -> str:
    """The provider's own words for an error: a JSON message or the body's text, masked."""
    reason = ""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        for key in ("message", "error_description", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                reason = value
                break
            if isinstance(value, dict | list) and value:
                reason = jsonlib.dumps(value)
                break
    if not reason:
        text = _TAGS.sub(" ", response.text)
        reason = " ".join(html.unescape(text).split())
    if masker is not None:
        reason = masker(reason)
    reason = reason[:MAX_REASON_LENGTH]
    return reason or response.reason_phrase or f"HTTP {response.status_code}"


class ProviderApi:
    """Requests to one provider's API, sent through the process's pooled client.

    ``label`` names the provider in messages ("Jenkins", "api.github.com"). Relative paths are
    joined to ``base_url``; an absolute URL must be on the same origin, so credentials never go
    to a host a response pointed us at.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        label: str,
        base_url: str,
        retry: RetryPolicy,
        gate: RateLimitGate | None = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        secrets: Iterable[str | None] = (),
        timeout: float | None = None,
        follow_redirects: bool = False,
        provider_type: str | None = None,
    ) -> None:
        self.http = http
        # The metrics' bounded provider label ("github", "jenkins", ...; else "other").
        self.provider_type = metrics.provider_type(provider_type, label)
        self.label = label
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry = retry
        self.gate = gate or RateLimitGate(
            max_wait=retry.seconds, total_wait=retry.seconds, backoff=retry.first_backoff
        )
        self.headers = dict(headers or {})
        self.auth = auth
        self.masker = Masker(secrets)
        self.timeout = timeout
        self.follow_redirects = follow_redirects

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def where(self) -> str:
        """The provider and its address, for messages."""
        return self.label if self.host in self.label else f"{self.label} at {self.host}"

    def url(self, path: str) -> str:
        if "://" in path:
            return path
        return urljoin(self.base_url, path.lstrip("/"))

    def same_origin(self, url: str) -> bool:
        ours, theirs = urlsplit(self.base_url), urlsplit(url)
        return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return decode_json(await self.request("GET", path, params=params), self.label)

    async def request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] | None = None,
        passthrough: Collection[int] = (),
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send; return the response when its status is in ``ok`` (default: below 400) or
        ``passthrough``; otherwise retry what can be retried and raise our error.

        A non-idempotent request (a trigger) is retried only when the provider cannot have
        acted on it: the connection never opened, or 429/502/503/504.
        """
        try:
            return await self._request(
                method,
                path,
                ok=ok,
                passthrough=passthrough,
                params=params,
                json=json,
                data=data,
                headers=headers,
                idempotent=idempotent,
            )
        except UpstreamError as exc:
            metrics.PROVIDER_ERRORS.labels(self.provider_type, exc.code).inc()
            raise

    async def _request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] | None,
        passthrough: Collection[int],
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        idempotent: bool | None,
    ) -> httpx.Response:
        url = self.url(path)
        if not self.same_origin(url):
            raise MalformedResponse(
                f"{self.where} pointed to another server ({url.split('?', 1)[0]})",
                provider=self.label,
            )
        if idempotent is None:
            idempotent = method.upper() in IDEMPOTENT_METHODS
        deadline = time.monotonic() + self.retry.seconds
        backoff = self.retry.first_backoff
        attempts = limited = 0
        while True:
            attempts += 1
            await self.gate.before_request()
            problem: UpstreamError
            try:
                response = await self._send(method, url, params, json, data, headers)
            except httpx.TransportError as exc:
                problem = self.unreachable()
                # A connection that never opened carried nothing; anything else may have.
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if sent and not idempotent:
                    raise problem from exc
                cause: BaseException | None = exc
            else:
                status = response.status_code
                if status in passthrough or (status < 400 if ok is None else status in ok):
                    self.gate.retry_delay(response, 0)  # notes "no requests left" on success
                    return response
                delay = self.gate.retry_delay(response, limited)
                if delay is not None:
                    limited += 1
                    if limited > MAX_RATE_LIMIT_RETRIES:
                        raise UpstreamRateLimited(
                            f"{self.where} kept answering that we are rate-limited",
                            provider=self.label,
                            status=status,
                        )
                    await self.gate.wait(
                        max(delay, backoff), url=url.split("?", 1)[0], provider=self.label
                    )
                    backoff = min(backoff * 2, self.retry.max_backoff)
                    continue
                problem = self.error_for(response)
                retryable = status in NOT_PROCESSED or (idempotent and status >= 500)
                if not retryable:
                    raise problem
                cause = None
            if deadline - time.monotonic() < backoff:
                # Not for "unreachable": how many attempts fit would tell refused from timed out.
                if attempts > 1 and not isinstance(problem, UpstreamUnreachable):
                    problem.message += f" (gave up after retrying for {self.retry.seconds:g} s)"
                    problem.args = (problem.message,)
                raise problem from cause
            logger.info(
                "%s %s %s failed (%s); retrying in %.2f s",
                self.label,
                method,
                urlsplit(url).path,
                problem.message,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.retry.max_backoff)

    async def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        metrics.PROVIDER_REQUESTS.labels(self.provider_type).inc()
        response = await self.http.request(
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers={**self.headers, **(headers or {})},
            auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=self.timeout if self.timeout is not None else httpx.USE_CLIENT_DEFAULT,
            follow_redirects=self.follow_redirects,
        )
        remaining = header_number(response, "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is not None:
            metrics.PROVIDER_RATE_LIMIT_REMAINING.labels(self.provider_type).set(remaining)
        return response

    def unreachable(self) -> UpstreamUnreachable:
        # One message whether the connection was refused or timed out: the answer must not
        # tell a caller which ports of an address are open.
        return UpstreamUnreachable(
            f"cannot reach {self.where}: the connection failed or timed out",
            provider=self.label,
        )

    def error_for(self, response: httpx.Response) -> UpstreamError:
        """Our error for an upstream answer (also for one the caller received as passthrough)."""
        reason = response_reason(response, self.masker)
        status = response.status_code
        common: dict[str, Any] = {"provider": self.label, "reason": reason, "status": status}
        if status == 401:
            return CredentialsRefused(
                f"{self.label} refused the token (HTTP 401): {reason}", **common
            )
        if status == 403 and not is_rate_limited(response):
            return CredentialsRefused(
                f"{self.label} refused access (HTTP 403): {reason}",
                code="provider_forbidden",
                **common,
            )
        if status in {404, 410}:
            path = urlsplit(str(response.request.url)).path
            return UpstreamNotFound(
                f"{self.label} has no {path} (HTTP {status}): {reason}", **common
            )
        if is_rate_limited(response):
            return UpstreamRateLimited(
                f"{self.label} is rate-limiting us (HTTP {status}): {reason}", **common
            )
        return UpstreamFailed(f"{self.label} answered HTTP {status}: {reason}", **common)


def decode_json(response: httpx.Response, label: str | None = None) -> Any:
    """The JSON body; a body that is not JSON is a :class:`MalformedResponse`."""
    try:
        return response.json()
    except (jsonlib.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"{label or response.url.host} sent a response that is not JSON "
            f"(status {response.status_code}, {response.headers.get('content-type', 'no type')})",
            provider=label,
        ) from exc
