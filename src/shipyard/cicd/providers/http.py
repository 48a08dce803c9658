"""HTTP to CI/CD providers: bounded retries with backoff, errors translated to ours."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from shipyard.cicd.providers.base import (
    CicdAuthFailed,
    CicdNotFound,
    CicdRequestFailed,
    CicdUnreachable,
)

logger = logging.getLogger(__name__)

FIRST_BACKOFF = 0.25
MAX_BACKOFF = 8.0
# Statuses that mean "the request was not processed; try again" even for a non-idempotent POST.
_NOT_PROCESSED = frozenset({429, 502, 503, 504})
_TAGS = re.compile(r"<(script|style|head)\b.*?</\1>|<[^>]+>", re.S | re.I)


def mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def response_reason(response: httpx.Response, secrets: tuple[str, ...] = ()) -> str:
    """The provider's own words for an error: a JSON ``message`` or the body's text."""
    reason = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, str):
            reason = message
    if not reason:
        text = _TAGS.sub(" ", response.text)
        reason = " ".join(html.unescape(text).split())
    reason = mask(reason, secrets)[:300]
    return reason or response.reason_phrase or f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    if response.headers.get("x-ratelimit-remaining") == "0":
        reset = response.headers.get("x-ratelimit-reset")
        if reset and reset.isdigit():
            return max(0.0, int(reset) - time.time())
    return None


def _is_rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"


class ProviderHttp:
    """Requests to one provider, retried on timeouts, 5xx and rate limits within a time budget."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        label: str,
        base_url: str,
        retry_seconds: float,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.http = http
        self.label = label
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry_seconds = retry_seconds
        self.headers = dict(headers or {})
        self.auth = auth
        self.secrets = secrets

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/")) if "://" not in path else path

    async def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        passthrough: tuple[int, ...] = (),
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send and return the response when its status is in ``ok`` or ``passthrough``.

        A non-idempotent request (a trigger) is retried only when the provider cannot have
        acted on it: the connection never opened, or 429/502/503/504.
        """
        url = self.url(path)
        deadline = time.monotonic() + self.retry_seconds
        backoff = FIRST_BACKOFF
        attempts = 0
        while True:
            attempts += 1
            wait: float | None = None
            problem: Exception
            try:
                response = await self.http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=data,
                    headers={**self.headers, **(headers or {})},
                    auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
                    follow_redirects=False,
                )
            except httpx.TransportError as exc:
                retryable = idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                problem = CicdUnreachable(
                    f"{self.label} at {urlsplit(url).netloc} is unreachable: "
                    f"{_describe_transport_error(exc)}"
                )
                if not retryable:
                    raise problem from exc
            else:
                status = response.status_code
                if status in ok or status in passthrough:
                    return response
                retryable = status in _NOT_PROCESSED or (idempotent and status >= 500)
                if _is_rate_limited(response):
                    retryable = True
                    wait = _retry_after(response)
                if not retryable:
                    raise self._error(response)
                problem = CicdRequestFailed(
                    f"{self.label} answered HTTP {status}: {response_reason(response, self.secrets)}"
                )
            remaining = deadline - time.monotonic()
            delay = backoff if wait is None else wait
            if remaining <= 0 or delay > remaining:
                problem.message += f" (gave up after {attempts} attempts)"
                problem.args = (problem.message,)
                raise problem
            logger.info(
                "%s %s %s failed (%s); retrying in %.2f s",
                self.label,
                method,
                urlsplit(url).path,
                problem.message,
                delay,
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _error(self, response: httpx.Response) -> Exception:
        reason = response_reason(response, self.secrets)
        status = response.status_code
        if status == 401:
            return CicdAuthFailed(
                f"{self.label} rejected the credentials (HTTP 401): {reason}",
                details={"status": status, "reason": reason},
            )
        if status == 403:
            return CicdAuthFailed(
                f"{self.label} refused access (HTTP 403): {reason}",
                details={"status": status, "reason": reason},
            )
        if status == 404:
            return CicdNotFound(
                f"{self.label} has no {urlsplit(str(response.request.url)).path} (HTTP 404): {reason}",
                details={"status": status, "reason": reason},
            )
        return CicdRequestFailed(
            f"{self.label} answered HTTP {status}: {reason}",
            details={"status": status, "reason": reason},
        )

    def error_for(self, response: httpx.Response) -> Exception:
        """Our error for a response the caller received as ``passthrough``."""
        return self._error(response)


def _describe_transport_error(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({exc or 'refused'})"
    return f"{type(exc).__name__}: {exc}"
