"""Read-only section pages built on the models while their domains' services are not in yet."""

from __future__ import annotations

from fastapi import Request, Response
from sqlalchemy import func, select

from shipyard.cicd.models import CicdJob, CicdProvider
from shipyard.deps import CurrentUser, SessionDep
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()


@router.get("/cicd")
async def cicd(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    providers = await session.scalars(select(CicdProvider).order_by(func.lower(CicdProvider.name)))
    jobs = await session.scalar(select(func.count()).select_from(CicdJob))
    return render(
        request,
        "sections/cicd.html",
        {"section": "cicd", "providers": providers.all(), "job_count": jobs or 0},
    )
