"""OAuth 2 token requests (authorization code and refresh), shared by the three providers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shipyard.errors import ProviderError
from shipyard.git.providers.types import OAuthClient, TokenSet
from shipyard.outbound.api import ProviderApi, RetryPolicy

if TYPE_CHECKING:
    from shipyard.git.providers.base import ProviderClient


class OAuthFailed(ProviderError):
    """The provider refused a code or refresh token; ``reason`` is its own explanation."""

    code = "oauth_failed"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


async def token_request(
    provider: ProviderClient, client: OAuthClient, grant: dict[str, str]
) -> TokenSet:
    """POST ``grant`` to the provider's token endpoint and read the token set it returns."""
    form = {**grant, "client_id": client.client_id, "client_secret": client.client_secret}
    # The token endpoint is on the web origin, not the API's, and takes no access token.
    web = ProviderApi(
        provider.http,
        label=provider.host,
        base_url=provider.token_endpoint,
        retry=RetryPolicy(provider.settings.http_retry_seconds),
        # GitHub answers form-encoded unless asked for JSON.
        headers={"Accept": "application/json"},
        secrets=(client.client_secret, grant.get("code"), grant.get("refresh_token")),
        timeout=provider.settings.http_timeout,
    )
    # Refusals are answered with 4xx (or GitHub's 200 with "error"): read them below.
    response = await web.request(
        "POST", provider.token_endpoint, data=form, passthrough=range(400, 500)
    )
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise OAuthFailed(
            f"{provider.host} sent an unreadable token response (status {response.status_code})",
            reason=f"HTTP {response.status_code}",
        )
    # GitHub reports failures with status 200 and an "error" member; the others with 400/401.
    error = body.get("error")
    if error or response.status_code >= 400 or not isinstance(body.get("access_token"), str):
        reason = str(body.get("error_description") or error or f"HTTP {response.status_code}")
        raise OAuthFailed(
            f"{provider.host} refused the {grant['grant_type']}: {reason}", reason=reason
        )
    expires_in = body.get("expires_in")
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=int(expires_in))
        if isinstance(expires_in, int | float) and expires_in > 0
        else None
    )
    refresh = body.get("refresh_token")
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=expires_at,
    )
