"""Routes: approvals of runs waiting in pending_approval (the list, approve, reject)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from shipyard.approvals import service
from shipyard.approvals.schemas import DecisionRequest, PendingApproval
from shipyard.deployments.schemas import DeploymentRead
from shipyard.deps import ActorDep, CurrentUser, RuntimeDep, SessionDep

router = APIRouter(tags=["approvals"])


@router.get("/approvals", response_model=list[PendingApproval])
async def list_approvals(
    principal: CurrentUser,
    session: SessionDep,
    all_pending: Annotated[
        bool,
        Query(
            alias="all",
            description="Every run waiting for approval, not only those you may decide on.",
        ),
    ] = False,
) -> list[PendingApproval]:
    """Runs waiting for approval that you may approve or reject, oldest first."""
    return await service.list_pending(session=session, principal=principal, everyone=all_pending)


@router.post("/deployments/{deployment_id}/approve", response_model=DeploymentRead)
async def approve_deployment(
    deployment_id: UUID,
    data: DecisionRequest,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DeploymentRead:
    """Approve a waiting run (the template's approver role or higher; your own run only when
    the template allows it). The last approval needed starts it."""
    return await service.decide(
        session=session,
        actor=actor,
        deployment_id=deployment_id,
        decision="approved",
        comment=data.comment,
        now=runtime.clock.now(),
    )


@router.post("/deployments/{deployment_id}/reject", response_model=DeploymentRead)
async def reject_deployment(
    deployment_id: UUID,
    data: DecisionRequest,
    actor: ActorDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> DeploymentRead:
    """Reject a waiting run with a comment (required): it ends cancelled with your reason."""
    return await service.decide(
        session=session,
        actor=actor,
        deployment_id=deployment_id,
        decision="rejected",
        comment=data.comment,
        now=runtime.clock.now(),
    )
