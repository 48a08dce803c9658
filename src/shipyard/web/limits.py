"""One cap on request bodies, enforced before a body is read whole.

``RequestBodyLimit`` is the outermost ASGI middleware: a request whose ``Content-Length`` is over
the cap gets 413 at once, without the application seeing it; a body sent without one (chunked)
is counted as it streams in, and the request is stopped with 413 as soon as the count passes the
cap. The answer is the API's JSON error shape (pages get it too: a browser never sends such a
body from Shipyard's own forms).

The cap is ``SHIPYARD_MAX_REQUEST_BYTES``; a route that needs more (an inbound webhook) says so
with :func:`shipyard.deps.max_request_bytes` on its endpoint (in deps so that domain routers can
use it), and only requests routed to it get that cap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.deps import REQUEST_BYTES_ATTRIBUTE as _LIMIT_ATTRIBUTE


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the streamed body passes the cap.

    An ``HTTPException`` so that FastAPI's body parsing passes it on (it turns other errors into
    400) and the application's handler answers 413 in the JSON shape; raised anywhere else, the
    middleware answers itself.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"body: the request body is larger than the {limit}-byte limit"


def too_large_body(limit: int) -> bytes:
    message = too_large_message(limit)
    body = {
        "error": {
            "code": "payload_too_large",
            "message": message,
            "details": {"errors": [{"field": "body", "message": message}], "limit_bytes": limit},
        }
    }
    return json.dumps(body).encode()


async def send_too_large(send: Send, limit: int) -> None:
    body = too_large_body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _declared_caps(
    routes: Iterable[BaseRoute], prefix: str
) -> Iterator[tuple[re.Pattern[str], frozenset[str], int]]:
    """(path pattern, methods, cap) of every route whose endpoint declares its own cap.

    Routers included in the app may stay routers of their own (FastAPI 0.165 keeps an included
    router whole instead of copying its routes up): they are walked with their prefix.
    """
    for route in routes:
        included = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        if included is not None:
            inner = prefix + str(getattr(context, "prefix", "") or "")
            yield from _declared_caps(getattr(included, "routes", []), inner)
            continue
        limit = getattr(getattr(route, "endpoint", None), _LIMIT_ATTRIBUTE, None)
        path = getattr(route, "path", None)
        if isinstance(limit, int) and isinstance(path, str):
            pattern, _, _ = compile_path(prefix + path)
            methods = frozenset(getattr(route, "methods", None) or ())
            yield pattern, methods, limit


class RequestBodyLimit:
    """Answer 413 (JSON) to bodies over the cap, by header or by counting what streams in."""

    def __init__(self, app: ASGIApp, *, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self._overrides: list[tuple[re.Pattern[str], frozenset[str], int]] | None = None

    def _routes_with_own_cap(
        self, scope: Scope
    ) -> list[tuple[re.Pattern[str], frozenset[str], int]]:
        if self._overrides is None:
            self._overrides = list(_declared_caps(getattr(scope.get("app"), "routes", []), ""))
        return self._overrides

    def limit_for(self, scope: Scope) -> int:
        path, method = scope.get("path", ""), scope.get("method", "")
        for pattern, methods, limit in self._routes_with_own_cap(scope):
            if (not methods or method in methods) and pattern.match(path):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await send_too_large(send, limit)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await send_too_large(send, limit)
