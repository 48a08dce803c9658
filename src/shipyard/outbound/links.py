"""Links to other systems that Shipyard shows as ``href``: only http(s), only where expected.

A CI server reports the address of a build and Shipyard links to it. A hostile or compromised
server could report ``javascript:...`` (script run as whoever clicks) or an address elsewhere
(phishing). :func:`http_link` keeps only plain http(s) URLs; :func:`link_under` also requires the
provider's own scheme, host and port, and a path under the provider's base path.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers drop or reinterpret these (tabs and newlines vanish, '\\' becomes '/'), so a URL
# holding any is refused rather than guessed at.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def _parsed(url: str | None) -> SplitResult | None:
    if not url or len(url) > 4096 or _UNSAFE.search(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None  # credentials in a link are never shown
    return parts


def http_link(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL a browser reads the way we do; else None."""
    return url if _parsed(url) is not None else None


def _port(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS[parts.scheme.lower()]


def link_under(url: str | None, base: str | None) -> str | None:
    """``url`` when it is http(s) and lies under ``base`` (same origin, path below); else None."""
    parts, root = _parsed(url), _parsed(base)
    if parts is None or root is None:
        return None
    if (
        parts.scheme.lower() != root.scheme.lower()
        or parts.hostname != root.hostname
        or _port(parts) != _port(root)
    ):
        return None
    segments = unquote(parts.path).split("/")
    if any(segment in {".", ".."} for segment in segments):
        return None  # the browser would resolve them, possibly out of the base path
    prefix = root.path.rstrip("/") + "/"
    path = parts.path or "/"
    if not (path == prefix.rstrip("/") or path.startswith(prefix)):
        return None
    return url
