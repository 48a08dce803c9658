"""The web UI: server-rendered pages (Jinja2 + HTMX) served by the same application as the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shipyard.web.limits import RequestBodyLimit
from shipyard.web.security import SecurityHeaders
from shipyard.web.session import BrowserSessionMiddleware
from shipyard.web.templating import STATIC_DIR


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the browser-session middleware on ``app``."""
    from shipyard.web.routes import build_router

    app.add_middleware(BrowserSessionMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(build_router())


def install_guards(app: FastAPI, *, max_request_bytes: int) -> None:
    """The outermost middlewares, for the API and the pages alike: body cap, security headers.

    Added last, so they run first: a too-large body is refused before any other middleware
    reads it, and even that refusal carries the security headers.
    """
    app.add_middleware(RequestBodyLimit, default_limit=max_request_bytes)
    app.add_middleware(SecurityHeaders)
