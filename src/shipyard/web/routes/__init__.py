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
        approvals,
        audit,
        auth,
        cicd,
        dashboard,
        deployment_grid,
        deployments,
        freeze,
        groups,
        hosts,
        notifications,
        providers,
        repositories,
        schedules,
        settings,
        sso,
        sso_ldap,
        sso_oidc,
        templates,
        webhooks,
        wizard,
    )

    router = APIRouter(dependencies=[Depends(csrf_protect)], include_in_schema=False)
    # providers before repositories: /repositories/providers is not a repository id.
    # Fixed paths before parameterised ones: /deployments/new is not a deployment id.
    areas = (
        auth,
        sso_oidc,
        sso_ldap,
        sso,
        cicd,
        dashboard,
        settings,
        providers,
        repositories,
        hosts,
        groups,
        templates,
        schedules,
        webhooks,
        wizard,
        notifications,
        approvals,
        freeze,
        audit,
        # Before deployments: its streamed /deployments/{id}/log.txt download.
        deployment_grid,
        deployments,
    )
    for area in areas:
        router.include_router(area.router)
    return router
