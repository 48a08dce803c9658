"""Request and response bodies of the approvals API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shipyard.deployments.schemas import ApprovalDecision, DeploymentStatus, LaunchedBy, Trigger

MAX_COMMENT = 2000


class DecisionRequest(BaseModel):
    """An approver's decision: a comment is optional on approve and required on reject."""

    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT,
        description="Why: shown on the run; required to reject (it is the run's error).",
    )


class TemplateRef(BaseModel):
    id: UUID
    name: str


class PendingApproval(BaseModel):
    """A run waiting in pending_approval, as the caller sees it."""

    deployment_id: UUID
    name: str
    status: DeploymentStatus
    template: TemplateRef | None
    trigger: Trigger
    requested_by: LaunchedBy | None = Field(
        description="Who or what launched it (a person, a token, a schedule, a webhook)."
    )
    created_at: datetime
    approvals_needed: int
    approvals: list[ApprovalDecision]
    approval_expires_at: datetime | None
    approver_role: Literal["admin", "developer", "viewer"]
    allow_self_approval: bool
    can_decide: bool = Field(description="Whether the caller may approve or reject it now.")
    reason: str | None = Field(
        default=None, description="Why the caller may not decide (when can_decide is false)."
    )
