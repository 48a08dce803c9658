"""Deployments: the list (filters, pages), a deployment's page with live log, cancel and re-run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.cicd import service as cicd_service
from shipyard.deployments import service
from shipyard.deployments.models import (
    DEPLOYMENT_STATUSES,
    FINAL_DEPLOYMENT_STATUSES,
    LOG_LEVELS,
    Deployment,
    DeploymentScript,
)
from shipyard.deps import CurrentUser, DatabaseDep, SessionDep, SettingsDep, client_ip, require
from shipyard.git.models import Repository
from shipyard.hosts.models import Host
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()
Runner = Annotated[Principal, require(Permission.RUN_DEPLOYMENTS)]
PAGE_SIZE = 25
DOWNLOAD_PAGE = 5000


async def _host_names(session: AsyncSession, host_ids: set[UUID]) -> dict[UUID, str]:
    if not host_ids:
        return {}
    rows = await session.execute(select(Host.id, Host.name).where(Host.id.in_(host_ids)))
    return {host_id: name for host_id, name in rows.all()}


@router.get("/deployments")
async def deployments(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    status: Annotated[str, Query(max_length=20)] = "",
    search: Annotated[str, Query(max_length=200)] = "",
    repository_id: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    repositories = (
        await session.execute(
            select(Repository.id, Repository.owner, Repository.name).order_by(Repository.name)
        )
    ).all()
    repository = _uuid_or_none(repository_id)
    rows, next_cursor = await service.list_deployments(
        session=session,
        limit=PAGE_SIZE,
        cursor=cursor or None,
        status=status if status in DEPLOYMENT_STATUSES else None,
        repository_id=repository,
        search=search.strip() or None,
    )
    filters = {"status": status, "search": search, "repository_id": repository_id}
    return render(
        request,
        "deployments/list.html",
        {
            "section": "deployments",
            "deployments": rows,
            "next_cursor": next_cursor,
            "is_first_page": not cursor,
            "filters": filters,
            "filtered": any(filters.values()),
            "statuses": DEPLOYMENT_STATUSES,
            "repositories": repositories,
        },
    )


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


async def _live_context(
    session: AsyncSession, principal: Principal, deployment: Deployment
) -> dict[str, Any]:
    scripts = await service.list_scripts(session=session, deployment_id=deployment.id)
    host_ids = set(deployment.host_ids) | {s.host_id for s in scripts if s.host_id}
    names = await _host_names(session, host_ids)
    by_host: dict[UUID | None, list[DeploymentScript]] = {}
    for script in scripts:
        by_host.setdefault(script.host_id, []).append(script)
    steps = await cicd_service.list_mappings(
        session=session, principal=principal, deployment_id=deployment.id
    )
    return {
        "deployment": deployment,
        "final": deployment.status in FINAL_DEPLOYMENT_STATUSES,
        "by_host": by_host,
        "host_names": names,
        "steps": steps,
    }


@router.get("/deployments/{deployment_id}")
async def deployment_page(
    request: Request, deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    context = await _live_context(session, principal, deployment)
    repository = (
        await session.get(Repository, deployment.repository_id)
        if deployment.repository_id
        else None
    )
    return render(
        request,
        "deployments/detail.html",
        {
            **context,
            "section": "deployments",
            "repository": repository,
            "levels": LOG_LEVELS,
            "secret_names": sorted(service.secret_environment(deployment)),
        },
    )


@router.get("/deployments/{deployment_id}/live")
async def deployment_live(
    request: Request, deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    """The status, controls and results; polled by the page while the deployment runs."""
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    context = await _live_context(session, principal, deployment)
    return render(request, "deployments/_live.html", context)


@router.get("/deployments/{deployment_id}/log.txt")
async def download_log(
    deployment_id: UUID, principal: CurrentUser, session: SessionDep, db: DatabaseDep
) -> Response:
    deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
    names = await _host_names(session, set(deployment.host_ids))

    async def lines() -> AsyncIterator[str]:
        after: int | None = None
        while True:
            async with db.session(
                tenant_id=principal.tenant_id, user_id=principal.user_id
            ) as reader:
                page = await service.list_logs(
                    session=reader,
                    deployment_id=deployment_id,
                    after_seq=after,
                    limit=DOWNLOAD_PAGE,
                )
            for line in page:
                host = names.get(line.host_id, "") if line.host_id else ""
                prefix = f"{line.timestamp.isoformat()} {line.level:<7}"
                yield f"{prefix} {host + ': ' if host else ''}{line.message}\n"
            if len(page) < DOWNLOAD_PAGE:
                return
            after = page[-1].seq

    filename = f"deployment-{deployment_id}.log"
    return StreamingResponse(
        lines(),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/deployments/{deployment_id}/cancel")
async def cancel(
    request: Request, deployment_id: UUID, principal: Runner, session: SessionDep
) -> Response:
    await service.cancel_deployment(
        session=session,
        principal=principal,
        deployment_id=deployment_id,
        ip_address=client_ip(request),
    )
    if is_htmx(request):
        deployment = await service.get_deployment(session=session, deployment_id=deployment_id)
        context = await _live_context(session, principal, deployment)
        return render(request, "deployments/_live.html", context)
    return RedirectResponse(f"/deployments/{deployment_id}", status_code=303)


@router.post("/deployments/{deployment_id}/rerun")
async def rerun(
    request: Request,
    deployment_id: UUID,
    principal: Runner,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    deployment = await service.rerun_deployment(
        session=session,
        principal=principal,
        deployment_id=deployment_id,
        settings=settings,
        ip_address=client_ip(request),
    )
    target = f"/deployments/{deployment.id}"
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
