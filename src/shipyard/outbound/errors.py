"""What an outside API's answer means to us: one error class per kind of upstream failure.

Every provider client, Git and CI/CD alike, raises these (through :mod:`shipyard.outbound.api`);
``api.py`` turns them into HTTP answers once. None of them is a 5xx because of something the
upstream decided about *our* request (credentials refused, not found): those are 4xx.
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import NotFound, ProviderError


class UpstreamError(ProviderError):
    """An outside system refused or failed; ``details`` carries ``provider`` and ``reason``."""

    status_code = 502
    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        reason: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        details: dict[str, Any] = {}
        if provider is not None:
            details["provider"] = provider
        if reason is not None:
            details["reason"] = reason
        if status is not None:
            details["status"] = status
        super().__init__(message, code=code, details=details)
        self.provider = provider
        self.reason = reason
        self.status = status


class CredentialsRefused(UpstreamError):
    """The upstream refused our credentials (HTTP 401, or 403 that is not a rate limit).

    Not an outage: the provider's settings need attention, so it is a 409. The code tells the
    two apart: ``provider_unauthorized`` (401: the token is wrong, revoked or expired) and
    ``provider_forbidden`` (403: the token works but may not do this).
    """

    status_code = 409
    code = "provider_unauthorized"


class UpstreamNotFound(UpstreamError, NotFound):
    """The upstream has no such thing, or does not show it to our credentials (HTTP 404/410)."""

    status_code = 404
    code = "upstream_not_found"


class UpstreamRateLimited(UpstreamError):
    """The upstream kept rate-limiting us for longer than the caller may wait."""

    status_code = 503
    code = "provider_rate_limited"


class UpstreamUnreachable(UpstreamError):
    """No answer: the connection failed or timed out (one message for both, on purpose)."""

    status_code = 502
    code = "provider_unreachable"


class UpstreamFailed(UpstreamError):
    """The upstream answered with an error retrying did not fix (5xx, an unexpected 4xx)."""

    code = "provider_error"


class MalformedResponse(UpstreamError):
    """The upstream answered, but not in the shape its API promises."""

    code = "malformed_response"


class OutboundRefused(UpstreamError):
    """The outbound policy refuses the address: nothing was sent, no connection was opened.

    A 422: the address is what must change (or the operator's policy), not the upstream.
    ``details`` carries ``host`` and ``setting`` (the setting that would allow it, if any).
    """

    status_code = 422
    code = "outbound_refused"

    def __init__(self, message: str, *, host: str, setting: str | None) -> None:
        super().__init__(message)
        self.details["host"] = host
        if setting is not None:
            self.details["setting"] = setting
        self.host = host
        self.setting = setting
