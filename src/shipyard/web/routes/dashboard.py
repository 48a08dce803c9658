"""The dashboard: what is running, what failed, hosts at a glance, my pinned repositories."""

from __future__ import annotations

from fastapi import Request, Response

from shipyard.deployments.pages import dashboard as read_dashboard
from shipyard.deps import ClockDep, CurrentUser, SessionDep
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()


@router.get("/")
async def dashboard(
    request: Request, principal: CurrentUser, session: SessionDep, clock: ClockDep
) -> Response:
    data = await read_dashboard(session=session, principal=principal, now=clock.now())
    return render(request, "dashboard.html", {"section": "dashboard", "data": data})
