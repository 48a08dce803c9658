"""The one pooled HTTP client of a process: timeouts, limits and user agent in one place."""

from __future__ import annotations

import httpx

from shipyard import __version__
from shipyard.config import Settings


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """The process's outbound client; provider clients pass absolute URLs and their own auth."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout, connect=min(settings.http_timeout, 10.0)),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        headers={"User-Agent": f"{settings.user_agent}/{__version__}"},
        follow_redirects=False,
    )
