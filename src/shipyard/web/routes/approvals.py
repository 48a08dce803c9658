"""Web pages: approvals of runs waiting in pending_approval.

``/approvals`` lists every waiting run of the tenant, with approve and reject forms (a comment
each) on those the viewer may decide on; a deployment's page loads its approval panel from
``/deployments/{id}/approval``. Each decision calls :func:`shipyard.approvals.service.decide`,
as the API does; a refusal (403, 409, 422) becomes the error page.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from shipyard.approvals import service
from shipyard.approvals.schemas import MAX_COMMENT
from shipyard.deps import ActorDep, CurrentUser, RuntimeDep, SessionDep
from shipyard.web.routes import web_router
from shipyard.web.templating import render

router = web_router()


@router.get("/approvals")
async def approvals(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    pending = await service.list_pending(session=session, principal=principal, everyone=True)
    return render(
        request,
        "approvals/list.html",
        {"section": "approvals", "pending": pending, "max_comment": MAX_COMMENT},
    )


@router.get("/deployments/{deployment_id}/approval")
async def approval_panel(
    request: Request, deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> Response:
    """The approval panel of a deployment's page (its state, the decisions, the forms)."""
    state = await service.approval_state(
        session=session, principal=principal, deployment_id=deployment_id
    )
    return render(
        request,
        "approvals/_panel.html",
        {"state": state, "max_comment": MAX_COMMENT, "back": f"/deployments/{deployment_id}"},
    )


async def _decide(
    request: Request,
    deployment_id: UUID,
    decision: str,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    comment = str(form.get("comment") or "")[:MAX_COMMENT]
    await service.decide(
        session=session,
        actor=actor,
        deployment_id=deployment_id,
        decision=decision,
        comment=comment,
        now=runtime.clock.now(),
    )
    back = str(form.get("next") or "")
    target = back if back in ("/approvals", f"/deployments/{deployment_id}") else "/approvals"
    return RedirectResponse(target, status_code=303)


@router.post("/approvals/{deployment_id}/approve")
async def approve(
    request: Request,
    deployment_id: UUID,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    return await _decide(request, deployment_id, "approved", actor, session, runtime)


@router.post("/approvals/{deployment_id}/reject")
async def reject(
    request: Request,
    deployment_id: UUID,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    return await _decide(request, deployment_id, "rejected", actor, session, runtime)
