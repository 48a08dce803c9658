"""The web UI's routes, one module per area, all behind the CSRF check."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shipyard.web.csrf import csrf_protect
from shipyard.web.errors import WebRoute


def web_router() -> APIRouter:
    """A router for one area; its errors render as pages."""
    return APIRouter(route_class=WebRoute, include_in_schema=False)


def build_router() -> APIRouter:
    from shipyard.web.routes import (
        auth,
        dashboard,
        deployments,
        hosts,
        providers,
        repositories,
        sections,
        settings,
    )

    router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
    # providers before repositories: /repositories/providers is not a repository id.
    for area in (auth, dashboard, sections, settings, providers, repositories, hosts, deployments):
        router.include_router(area.router)
    return router
