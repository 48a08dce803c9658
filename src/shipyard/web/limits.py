"""One cap on request bodies, enforced before a body is read whole.

``RequestBodyLimit`` is the outermost ASGI middleware: a request whose ``Content-Length`` is over
the cap gets 413 at once, without the application seeing it; a body sent without one (chunked)
is counted as it streams in, and the request is stopped with 413 as soon as the count passes the
cap. The answer is the API's JSON error shape (pages get it too: a browser never sends such a
body from Shipyard's own forms).

The cap is ``SHIPYARD_MAX_REQUEST_BYTES``; a route that needs more (an import) says so with
:func:`max_request_bytes` on its endpoint, and only requests routed to it get that cap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LIMIT_ATTRIBUTE = "__shipyard_max_request_bytes__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def max_request_bytes(limit: int) -> Callable[[Endpoint], Endpoint]:
    """Let requests to the decorated endpoint carry bodies of up to ``limit`` bytes."""
    if limit < 0:
        raise ValueError("a body cap cannot be negative")

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _LIMIT_ATTRIBUTE, limit)
        return endpoint

    return mark


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


class RequestBodyLimit:
    """Answer 413 (JSON) to bodies over the cap, by header or by counting what streams in."""

    def __init__(self, app: ASGIApp, *, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit
        self._overrides: list[tuple[BaseRoute, int]] | None = None

    def _routes_with_own_cap(self, scope: Scope) -> list[tuple[BaseRoute, int]]:
        if self._overrides is None:
            found: list[tuple[BaseRoute, int]] = []
            for route in getattr(scope.get("app"), "routes", []):
                limit = getattr(getattr(route, "endpoint", None), _LIMIT_ATTRIBUTE, None)
                if isinstance(limit, int):
                    found.append((route, limit))
            self._overrides = found
        return self._overrides

    def limit_for(self, scope: Scope) -> int:
        for route, limit in self._routes_with_own_cap(scope):
            match, _ = route.matches(scope)
            if match is Match.FULL:
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
