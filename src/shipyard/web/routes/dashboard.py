"""The dashboard: what is running, what failed, hosts at a glance, my pinned repositories."""

from __future__ import annotations

from fastapi import Request, Response

from shipyard.deps import CurrentUser, SessionDep
from shipyard.web.dashboard import load_dashboard
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()


@router.get("/")
async def dashboard(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    data = await load_dashboard(session, principal)
    return render(request, "dashboard.html", {"section": "dashboard", "data": data})
