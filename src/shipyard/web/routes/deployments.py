"""Deployments: the list (filters, pages), a deployment's page with live log, cancel and re-run."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deployments import flows, pages, service
from shipyard.deployments.models import DEPLOYMENT_STATUSES, LOG_LEVELS
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.freeze import service as freeze
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Runner = Annotated[Actor, acting(Permission.RUN_DEPLOYMENTS)]


@router.get("/deployments")
async def deployments(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Annotated[str, Query(max_length=20)] = "",
    search: Annotated[str, Query(max_length=200)] = "",
    repository_id: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    view = await pages.deployment_list(
        session=session,
        cursor=cursor or None,
        status=status or None,
        repository_id=_uuid_or_none(repository_id),
        search=search.strip() or None,
    )
    filters = {"status": status, "search": search, "repository_id": repository_id}
    # The banner while a freeze window is in force (not for HTMX's rows alone).
    frozen = (
        None
        if is_htmx(request)
        else await freeze.active_windows(
            session=session, tenant_id=principal.tenant_id, at=runtime.clock.now(), count=1
        )
    )
    # HTMX asks again for the rows alone while a run on the page is live.
    return render(
        request,
        "deployments/_rows.html" if is_htmx(request) else "deployments/list.html",
        {
            **view.context(),
            "live": view.live,
            "section": "deployments",
            "is_first_page": not cursor,
            "cursor": cursor,
            "filters": filters,
            "filtered": any(filters.values()),
            "statuses": DEPLOYMENT_STATUSES,
            "freeze_active": frozen,
        },
    )


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


@router.get("/deployments/{deployment_id}")
async def deployment_page(
    request: Request, deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    view = await pages.deployment_detail(
        session=session, principal=principal, deployment_id=deployment_id
    )
    return render(
        request,
        "deployments/detail.html",
        {**view.context(), "section": "deployments", "levels": LOG_LEVELS},
    )


@router.get("/deployments/{deployment_id}/live")
async def deployment_live(
    request: Request, deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    """The status, controls and results; polled by the page while the deployment runs."""
    view = await pages.deployment_live(
        session=session, principal=principal, deployment_id=deployment_id
    )
    return render(request, "deployments/_live.html", view.context())


@router.post("/deployments/{deployment_id}/cancel")
async def cancel(
    request: Request, deployment_id: UUID, actor: Runner, session: SessionDep
) -> Response:
    await service.cancel_deployment(session=session, actor=actor, deployment_id=deployment_id)
    if is_htmx(request):
        view = await pages.deployment_live(
            session=session, principal=actor.principal, deployment_id=deployment_id
        )
        return render(request, "deployments/_live.html", view.context())
    return RedirectResponse(f"/deployments/{deployment_id}", status_code=303)


@router.post("/deployments/{deployment_id}/rerun")
async def rerun(
    request: Request, deployment_id: UUID, actor: Runner, runtime: RuntimeDep
) -> Response:
    # A flow (it reads the script catalogue): no session is held across it.
    deployment = await flows.rerun_deployment(
        runtime=runtime, actor=actor, deployment_id=deployment_id, trigger="manual"
    )
    target = f"/deployments/{deployment.id}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
