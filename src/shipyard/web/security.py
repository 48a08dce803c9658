"""Security headers on every response, set by one ASGI middleware.

Pages, API answers, static files and errors all carry them:

- ``Content-Security-Policy``: scripts only from Shipyard itself (no inline script, no eval),
  styles only from its stylesheet, no plugins, no framing, ``<base>`` pinned to itself;
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``;
- ``X-Content-Type-Options: nosniff``;
- ``Referrer-Policy: strict-origin-when-cross-origin``: a link out (a CI build) tells the other
  site only Shipyard's origin, never a page address holding ids.

The interactive API docs (``/docs``, ``/redoc``) load Swagger UI / ReDoc from their CDN and start
with an inline script: they get a policy of their own that allows that CDN and exactly the inline
scripts FastAPI wrote into the page (by SHA-256 hash), and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

APP_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
# Swagger UI and ReDoc set styles inline as they render; scripts stay hash-pinned.
_DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' " + DOCS_CDN + "{hashes}",
        "style-src 'self' " + DOCS_CDN + " https://fonts.googleapis.com 'unsafe-inline'",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "font-src 'self' https://fonts.gstatic.com",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_DOCS_PAGE_MAX_BYTES = 256 * 1024


def docs_policy(page: bytes) -> str:
    """The docs pages' policy, allowing exactly the inline scripts ``page`` holds."""
    hashes = "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return _DOCS_POLICY.format(hashes=hashes)


def _with_headers(message: Message, policy: str) -> Message:
    headers = [
        (name, value)
        for name, value in message.get("headers", [])
        if name.lower() not in {b"content-security-policy", *(name for name, _ in COMMON_HEADERS)}
    ]
    headers.append((b"content-security-policy", policy.encode()))
    headers.extend(COMMON_HEADERS)
    return {**message, "headers": headers}


class SecurityHeaders:
    """Add the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = _with_headers(message, APP_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hold the (small) docs page back until its inline scripts are hashed into the policy."""
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        passing = False

        async def hold(message: Message) -> None:
            nonlocal start, size, passing
            if passing:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if message.get("more_body", False) and size <= _DOCS_PAGE_MAX_BYTES:
                return
            # Whole page (or too big to hold: then no inline script is allowed at all).
            page = b"".join(chunks) if size <= _DOCS_PAGE_MAX_BYTES else b""
            await send(_with_headers(start, docs_policy(page)))
            await send({**message, "body": b"".join(chunks)})
            passing = True

        await self.app(scope, receive, hold)
        if start is not None and not passing:  # a response that never sent its body
            await send(_with_headers(start, docs_policy(b"")))
            await send({"type": "http.response.body", "body": b""})
