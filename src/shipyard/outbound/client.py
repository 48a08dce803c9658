"""The one pooled HTTP client of a process: timeouts, limits, user agent and outbound policy."""

from __future__ import annotations

import httpx
from httpx._utils import get_environment_proxies

from shipyard import __version__
from shipyard.config import Settings
from shipyard.outbound.policy import OutboundPolicy
from shipyard.outbound.transport import PolicyTransport


def build_http_client(
    settings: Settings, *, policy: OutboundPolicy | None = None
) -> httpx.AsyncClient:
    """The process's outbound client; provider clients pass absolute URLs and their own auth.

    Every connection it opens, redirects included, obeys ``policy`` (the runtime's; built from
    ``settings`` when not given). Proxies from the environment are honoured as httpx would.
    """
    policy = policy or OutboundPolicy.from_settings(settings)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    # An explicit transport turns off httpx's own reading of HTTP(S)_PROXY/NO_PROXY: mount the
    # same proxies, each behind the policy.
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {
        pattern: None if proxy is None else PolicyTransport(policy, limits=limits, proxy=proxy)
        for pattern, proxy in get_environment_proxies().items()
    }
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout, connect=min(settings.http_timeout, 10.0)),
        headers={"User-Agent": f"{settings.user_agent}/{__version__}"},
        follow_redirects=False,
        transport=PolicyTransport(policy, limits=limits),
        mounts=mounts,
    )
