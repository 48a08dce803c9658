"""Approvals in the database: the pending list, a decision (approve or reject), the expiry.

A run of a template that requires approval is stored ``pending_approval`` with its job parked
far in the future (:data:`shipyard.deployments.service.HELD_UNTIL`). The last approval it needs
moves that job to now in the decision's transaction (the run starts); a rejection or the expiry
takes the job off the queue and ends the run ``cancelled`` with the reason as its ``error``.
Each decision is audited and emitted (``approval.approved``/``approval.rejected``).

Who may decide is the template's rule, read when the decision is made: a role of at least its
``approver_role``, and not the person who launched the run unless ``allow_self_approval``. A run
whose template was deleted since keeps waiting for an admin (self-approval off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import column, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor, Principal
from shipyard.accounts.service import record_audit
from shipyard.approvals.models import DeploymentApproval
from shipyard.approvals.schemas import PendingApproval, TemplateRef
from shipyard.db import tenant_clause
from shipyard.deployments import service as deployments
from shipyard.deployments.logs import notify_deployment
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript
from shipyard.deployments.schemas import ApprovalDecision, DeploymentRead
from shipyard.errors import Conflict, PermissionDenied, ShipyardError, ValidationFailed
from shipyard.jobs import cancel_job, reschedule_waiting_job
from shipyard.notifications.events import Event, emit

ROLE_RANK = {"viewer": 0, "developer": 1, "admin": 2}
# Runs a sweep of the expiry ends per transaction (the rest: its next round).
EXPIRY_BATCH = 200

# The template's approval rule, read by name: templates sit above approvals in the layers (a
# template launches runs that wait here), so its model is not imported.
_templates = table(
    "templates",
    column("id"),
    column("tenant_id"),
    column("name"),
    column("approver_role"),
    column("allow_self_approval"),
)


@dataclass(frozen=True)
class Rule:
    """Who may decide on a run: the template's rule (an admin when the template is gone)."""

    approver_role: str = "admin"
    allow_self_approval: bool = False
    template_name: str | None = None


async def _rules(session: AsyncSession, template_ids: set[UUID]) -> dict[UUID, Rule]:
    if not template_ids:
        return {}
    rows = await session.execute(
        select(
            _templates.c.id,
            _templates.c.name,
            _templates.c.approver_role,
            _templates.c.allow_self_approval,
        ).where(_templates.c.id.in_(template_ids))
    )
    return {
        template_id: Rule(approver_role=role, allow_self_approval=allow_self, template_name=name)
        for template_id, name, role, allow_self in rows
    }


async def _rule(session: AsyncSession, deployment: Deployment) -> Rule:
    if deployment.template_id is None:
        return Rule()
    found = await _rules(session, {deployment.template_id})
    return found.get(deployment.template_id, Rule())


def _refusal(
    principal: Principal, deployment: Deployment, rule: Rule, decided: set[UUID]
) -> PermissionDenied | Conflict | None:
    """Why ``principal`` may not decide on ``deployment`` now (None: they may)."""
    if ROLE_RANK.get(principal.role, -1) < ROLE_RANK[rule.approver_role]:
        return PermissionDenied(
            f"deciding on runs of this template needs the role {rule.approver_role} or higher "
            f"(yours is {principal.role})",
            code="approver_role",
            details={"approver_role": rule.approver_role, "role": principal.role},
        )
    if deployment.created_by == principal.user_id and not rule.allow_self_approval:
        return PermissionDenied(
            "you launched this run, and its template does not allow approving your own runs",
            code="self_approval",
        )
    if principal.user_id in decided:
        return Conflict("you have already decided on this run", code="already_decided")
    return None


async def _decisions(
    session: AsyncSession, deployment_ids: Sequence[UUID]
) -> dict[UUID, list[DeploymentApproval]]:
    found: dict[UUID, list[DeploymentApproval]] = {}
    if not deployment_ids:
        return found
    rows = await session.scalars(
        select(DeploymentApproval)
        .where(
            DeploymentApproval.deployment_id.in_(deployment_ids),
            tenant_clause(session, DeploymentApproval.tenant_id),
        )
        .order_by(DeploymentApproval.created_at, DeploymentApproval.id)
    )
    for row in rows:
        found.setdefault(row.deployment_id, []).append(row)
    return found


def _decision_read(row: DeploymentApproval) -> ApprovalDecision:
    return ApprovalDecision.model_validate(
        {
            "decided_by": {"id": row.decided_by, "email": row.decider_email},
            "decision": row.decision,
            "comment": row.comment,
            "at": row.created_at,
        }
    )


def _state(
    principal: Principal,
    deployment: Deployment,
    rule: Rule,
    rows: list[DeploymentApproval],
) -> PendingApproval:
    decided = {row.decided_by for row in rows if row.decided_by is not None}
    refusal: ShipyardError | None = (
        _refusal(principal, deployment, rule, decided)
        if deployment.status == "pending_approval"
        else Conflict(f"the run is {deployment.status}, not waiting for approval")
    )
    return PendingApproval.model_validate(
        {
            "deployment_id": deployment.id,
            "name": deployment.name,
            "status": deployment.status,
            "template": (
                TemplateRef(id=deployment.template_id, name=rule.template_name)
                if deployment.template_id is not None and rule.template_name is not None
                else None
            ),
            "trigger": deployment.trigger,
            "requested_by": deployment.launched_by,
            "created_at": deployment.created_at,
            "approvals_needed": deployment.approvals_needed or 1,
            "approvals": [_decision_read(row) for row in rows],
            "approval_expires_at": deployment.approval_expires_at,
            "approver_role": rule.approver_role,
            "allow_self_approval": rule.allow_self_approval,
            "can_decide": refusal is None,
            "reason": refusal.message if refusal is not None else None,
        }
    )


async def list_pending(
    *, session: AsyncSession, principal: Principal, everyone: bool = False
) -> list[PendingApproval]:
    """The runs waiting for approval that ``principal`` may decide on, oldest first
    (``everyone``: every waiting run of the tenant, each saying whether they may)."""
    waiting = (
        await session.scalars(
            select(Deployment)
            .where(
                Deployment.status == "pending_approval",
                tenant_clause(session, Deployment.tenant_id),
            )
            .order_by(Deployment.created_at, Deployment.id)
            .limit(500)
        )
    ).all()
    rules = await _rules(session, {d.template_id for d in waiting if d.template_id is not None})
    decisions = await _decisions(session, [d.id for d in waiting])
    states = [
        _state(
            principal,
            deployment,
            rules.get(deployment.template_id, Rule()) if deployment.template_id else Rule(),
            decisions.get(deployment.id, []),
        )
        for deployment in waiting
    ]
    return [state for state in states if everyone or state.can_decide]


async def approval_state(
    *, session: AsyncSession, principal: Principal, deployment_id: UUID
) -> PendingApproval | None:
    """A run's approvals as ``principal`` sees them (None: its template required none)."""
    deployment = await deployments.get_deployment(session=session, deployment_id=deployment_id)
    if deployment.approvals_needed is None:
        return None
    rule = await _rule(session, deployment)
    rows = (await _decisions(session, [deployment.id])).get(deployment.id, [])
    return _state(principal, deployment, rule, rows)


def _event(
    name: str, deployment: Deployment, *, detail: str, by: str | None, extra: dict[str, Any]
) -> Event:
    return Event(
        name=name,
        tenant_id=deployment.tenant_id,
        subject_type="deployment",
        subject_id=deployment.id,
        title=deployment.name,
        status=deployment.status,
        triggered_by=by,
        commit_sha=deployment.commit_sha,
        ref=deployment.ref,
        template_id=deployment.template_id,
        repository_id=deployment.repository_id,
        path=f"/deployments/{deployment.id}",
        detail=detail,
        extra=extra,
    )


async def _end_waiting(
    session: AsyncSession, deployment: Deployment, *, error: str, now: datetime
) -> None:
    """End a run that waits for approval ``cancelled`` (its job off the queue), with ``error``."""
    if deployment.job_id is not None:
        await cancel_job(session, deployment.job_id)
    deployment.status = "cancelled"
    deployment.completed_at = now
    deployment.error = error
    await session.execute(
        update(DeploymentScript)
        .where(
            DeploymentScript.deployment_id == deployment.id,
            DeploymentScript.status == "pending",
        )
        .values(status="cancelled")
    )
    session.add(
        DeploymentLog(
            deployment_id=deployment.id,
            tenant_id=deployment.tenant_id,
            level="WARNING",
            message=f"Deployment cancelled before it started: {error}",
        )
    )
    await notify_deployment(session, deployment.id)


async def _release(session: AsyncSession, deployment: Deployment) -> None:
    """Start an approved run now: its parked job moved to the machine's now (the queue's)."""
    moved = deployment.job_id is not None and await reschedule_waiting_job(
        session, job_id=deployment.job_id, when=deployments.utcnow()
    )
    if not moved:
        raise Conflict("the run's job is no longer waiting", code="not_waiting")
    deployment.status = "pending"
    await notify_deployment(session, deployment.id)


async def decide(
    *,
    session: AsyncSession,
    actor: Actor,
    deployment_id: UUID,
    decision: str,
    comment: str | None,
    now: datetime,
) -> DeploymentRead:
    """Record ``actor``'s decision (``approved`` or ``rejected``) on a waiting run.

    The last approval needed starts the run; a rejection ends it ``cancelled`` naming who
    rejected it and why. 403 below the template's approver role or on one's own run (unless
    allowed), 409 on a second decision or a run that is not waiting, 422 a reject without a
    comment.
    """
    assert decision in ("approved", "rejected")
    deployment = await deployments.get_deployment(
        session=session, deployment_id=deployment_id, for_update=True
    )
    comment = (comment or "").strip() or None
    if decision == "rejected" and comment is None:
        raise ValidationFailed("say why the run is rejected", field="comment", code="required")
    if deployment.status != "pending_approval":
        raise Conflict(
            f"the run is not waiting for approval (it is {deployment.status})",
            code="not_pending_approval",
        )
    rule = await _rule(session, deployment)
    earlier = (await _decisions(session, [deployment.id])).get(deployment.id, [])
    decided = {row.decided_by for row in earlier if row.decided_by is not None}
    refusal = _refusal(actor.principal, deployment, rule, decided)
    if refusal is not None:
        raise refusal
    session.add(
        DeploymentApproval(
            tenant_id=deployment.tenant_id,
            deployment_id=deployment.id,
            decided_by=actor.user_id,
            decider_email=actor.principal.email,
            decision=decision,
            comment=comment,
        )
    )
    approved = sum(row.decision == "approved" for row in earlier) + (decision == "approved")
    needed = deployment.approvals_needed or 1
    who = actor.principal.email
    if decision == "rejected":
        await _end_waiting(session, deployment, error=f"rejected by {who}: {comment}", now=now)
        detail = f"rejected by {who}: {comment}"
    elif approved >= needed:
        await _release(session, deployment)
        detail = f"approved by {who} ({approved} of {needed}): the run starts"
    else:
        detail = f"approved by {who} ({approved} of {needed}): waits for {needed - approved} more"
    await audit(
        session,
        actor=actor,
        action="deployment.approve" if decision == "approved" else "deployment.reject",
        resource_type="deployment",
        resource_id=deployment.id,
        details={
            "name": deployment.name,
            "comment": comment,
            "approvals": approved,
            "approvals_needed": needed,
            "status": deployment.status,
        },
    )
    await emit(
        session,
        _event(
            "approval.approved" if decision == "approved" else "approval.rejected",
            deployment,
            detail=detail,
            by=who,
            extra={"comment": comment, "approvals": approved, "approvals_needed": needed},
        ),
    )
    await session.flush()
    return await deployments.read_deployment(session=session, deployment_id=deployment.id)


def waited_minutes(deployment: Deployment) -> int:
    """How long the run was allowed to wait, in minutes (what the template said at launch)."""
    if deployment.approval_expires_at is None:
        return 0
    return max(
        0, round((deployment.approval_expires_at - deployment.created_at).total_seconds() / 60)
    )


async def expire_pending(session: AsyncSession, *, now: datetime) -> list[UUID]:
    """End every run of every tenant still waiting for approval past its expiry (``session`` is
    a system session): ``cancelled``, "approval expired after N minutes", audited as the system
    and emitted as ``approval.rejected``. The ids ended (up to :data:`EXPIRY_BATCH`)."""
    expired = (
        await session.scalars(
            select(Deployment)
            .where(
                Deployment.status == "pending_approval",
                Deployment.approval_expires_at <= now,
            )
            .order_by(Deployment.approval_expires_at)
            .limit(EXPIRY_BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for deployment in expired:
        error = f"approval expired after {waited_minutes(deployment)} minutes"
        await _end_waiting(session, deployment, error=error, now=now)
        await record_audit(
            session=session,
            tenant_id=deployment.tenant_id,
            actor_id=None,
            action="deployment.approval_expire",
            resource_type="deployment",
            resource_id=deployment.id,
            details={"name": deployment.name, "error": error},
        )
        await emit(
            session,
            _event(
                "approval.rejected",
                deployment,
                detail=error,
                by=None,
                extra={"expired": True, "approvals_needed": deployment.approvals_needed},
            ),
        )
    await session.flush()
    return [deployment.id for deployment in expired]
