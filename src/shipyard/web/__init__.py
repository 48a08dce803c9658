"""The web UI: server-rendered pages (Jinja2 + HTMX) served by the same application as the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shipyard.web.session import BrowserSessionMiddleware
from shipyard.web.templating import STATIC_DIR


def install(app: FastAPI) -> None:
    """Mount the pages, their static files and the browser-session middleware on ``app``."""
    from shipyard.web.routes import build_router

    app.add_middleware(BrowserSessionMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(build_router())
