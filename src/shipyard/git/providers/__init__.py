"""Git provider clients: GitHub, GitLab and Gitea behind one interface."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from shipyard.config import Settings
from shipyard.errors import ValidationFailed
from shipyard.git.providers.auth import TokenSource
from shipyard.git.providers.base import ProviderClient
from shipyard.git.providers.gitea import GiteaClient
from shipyard.git.providers.github import GitHubClient
from shipyard.git.providers.gitlab import GitLabClient
from shipyard.git.providers.ratelimit import RateLimitGate

CLIENTS: dict[str, type[ProviderClient]] = {
    "github": GitHubClient,
    "gitlab": GitLabClient,
    "gitea": GiteaClient,
}


def normalise_server_url(
    provider_type: str, server_url: str | None, *, field: str = "server_url"
) -> str | None:
    """``server_url`` checked (http/https, a host, no credentials) and without a trailing slash.

    None means the provider's public service (github.com, gitlab.com); Gitea has none.
    """
    if server_url is None or not server_url.strip():
        if provider_type == "gitea":
            raise ValidationFailed("Gitea needs the address of its server", field=field)
        return None
    value = server_url.strip()
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValidationFailed(f"is not a valid URL: {exc}", field=field) from exc
    if parts.scheme not in {"http", "https"}:
        raise ValidationFailed("must be an http:// or https:// URL", field=field)
    try:
        hostname = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"is not a valid URL: {exc}", field=field) from exc
    if not hostname:
        raise ValidationFailed("must name a host", field=field)
    if parts.username or parts.password:
        raise ValidationFailed("must not contain credentials; send the token", field=field)
    if parts.query or parts.fragment:
        raise ValidationFailed("must not contain a query or fragment", field=field)
    normalised = value.rstrip("/")
    # github.com and gitlab.com are the default; stored as None so one OAuth app matches both.
    if provider_type == "github" and hostname in {"github.com", "api.github.com"}:
        return None
    if provider_type == "gitlab" and hostname == "gitlab.com" and parts.path.strip("/") == "":
        return None
    return normalised


def server_key(provider_type: str, server_url: str | None) -> str:
    """The server an OAuth application belongs to: its URL, or the public service's."""
    if server_url:
        return server_url
    return {"github": "https://github.com", "gitlab": "https://gitlab.com"}.get(provider_type, "")


def provider_client(
    provider_type: str,
    *,
    http: httpx.AsyncClient,
    settings: Settings,
    server_url: str | None,
    token: TokenSource | None = None,
    gate: RateLimitGate | None = None,
) -> ProviderClient:
    cls = CLIENTS[provider_type]
    return cls(http=http, settings=settings, server_url=server_url, token=token, gate=gate)


__all__ = [
    "CLIENTS",
    "GitHubClient",
    "GitLabClient",
    "GiteaClient",
    "ProviderClient",
    "normalise_server_url",
    "provider_client",
    "server_key",
]
