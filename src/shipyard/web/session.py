"""Browser sessions: the session cookie, read into ``request.state`` for the shared auth logic."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.config import Settings
from shipyard.web.csrf import CSRF_COOKIE, SAFE_METHODS, is_bound, issue_token, session_binding

SESSION_COOKIE = "shipyard_session"
# Paths that are not pages: the API authenticates by header, static files need no session.
NOT_PAGES = ("/api/", "/static/", "/healthz", "/readyz", "/docs", "/redoc", "/openapi.json")


def is_page(path: str) -> bool:
    return not path.startswith(NOT_PAGES)


def cookie_is_secure(scheme: str, settings: Settings) -> bool:
    return scheme == "https" or settings.secure_cookies


def set_session_cookie(
    response: Response, request: Request, token: str, expires_at: datetime | None
) -> None:
    settings: Settings = request.app.state.runtime.settings
    max_age = None
    if expires_at is not None:
        max_age = max(0, int((expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request.url.scheme, settings),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    settings: Settings = request.app.state.runtime.settings
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=cookie_is_secure(request.url.scheme, settings),
    )


class BrowserSessionMiddleware:
    """Puts the session cookie where ``deps.get_principal`` looks and keeps a CSRF cookie current.

    The API accepts the cookie only for safe methods (so a browser can open the log stream); its
    unsafe methods need the bearer header, which another site cannot make a browser send.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        path: str = scope["path"]
        method: str = scope["method"]
        token = connection.cookies.get(SESSION_COOKIE)
        state = scope.setdefault("state", {})
        page = is_page(path)
        if token and (page or (path.startswith("/api/") and method in SAFE_METHODS)):
            state["session_token"] = token
        if not page:
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        settings: Settings = runtime.settings
        binding = session_binding(token)
        current = connection.cookies.get(CSRF_COOKIE)
        if current and is_bound(runtime.keyring, current, binding):
            state["csrf_token"] = current
            await self.app(scope, receive, send)
            return
        fresh = issue_token(runtime.keyring, binding)
        state["csrf_token"] = fresh
        cookie = Response()
        cookie.set_cookie(
            CSRF_COOKIE,
            fresh,
            path="/",
            httponly=True,
            samesite="lax",
            secure=cookie_is_secure(scope.get("scheme", "http"), settings),
        )
        set_cookie = cookie.headers["set-cookie"]

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A response that rotates the session itself (log-in, log-out) rebinds on next load.
                if not any(
                    value.startswith(f"{CSRF_COOKIE}=") for value in headers.getlist("set-cookie")
                ):
                    headers.append("set-cookie", set_cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)
