"""Request and response bodies of the templates API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.cicd.schemas import CicdStepRequest
from shipyard.deployments.schemas import (
    DeploymentStatus,
    ExecutionOptions,
    LaunchedBy,
    ScriptChoice,
    Trigger,
)
from shipyard.freeze.schemas import FreezeOverride
from shipyard.git.refs import validate_ref
from shipyard.hosts.schemas import MAX_VARIABLES, Target, Variable, VariableRead, check_variables
from shipyard.templates.parameters import Parameter

MAX_PARAMETERS = 100


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateFields(StrictModel):
    description: str | None = Field(default=None, max_length=5000)
    repository_id: UUID | None = None
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="A branch (its newest commit at each launch), a tag or a commit SHA; "
        "the repository's default branch when null.",
    )

    @field_validator("ref")
    @classmethod
    def _a_ref(cls, value: str | None) -> str | None:
        return validate_ref(value)


MAX_APPROVAL_TIMEOUT_MINUTES = 30 * 24 * 60


class ApprovalSettings(StrictModel):
    """Whether runs of the template wait in pending_approval, and for whom."""

    required: bool = Field(default=False, description="Runs wait for approval before they start.")
    approvals_needed: int = Field(
        default=1, ge=1, le=10, description="How many distinct people must approve."
    )
    approver_role: Literal["admin", "developer", "viewer"] = Field(
        default="developer", description="The least role that may approve or reject."
    )
    allow_self_approval: bool = Field(
        default=False, description="The person who launched a run may approve it."
    )
    timeout_minutes: int = Field(
        default=1440,
        ge=1,
        le=MAX_APPROVAL_TIMEOUT_MINUTES,
        description="A run still waiting after this long is cancelled (approval expired).",
    )


class TemplateCreate(TemplateFields):
    name: str = Field(min_length=1, max_length=200)
    scripts: list[ScriptChoice] = Field(
        default_factory=list,
        max_length=100,
        description="In run order; arguments may hold {{ parameter }} (never a secret one).",
    )
    target: Target = Field(default_factory=Target)
    options: ExecutionOptions = Field(default_factory=ExecutionOptions)
    environment: list[Variable] = Field(
        default_factory=list,
        max_length=MAX_VARIABLES,
        description="[{name, value, secret}]; a secret's value is write-only.",
    )
    cicd_steps: list[CicdStepRequest] = Field(default_factory=list, max_length=50)
    parameters: list[Parameter] = Field(default_factory=list, max_length=MAX_PARAMETERS)
    admin_only: bool = Field(default=False, description="Only admins may launch it.")
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: list[Variable]) -> list[Variable]:
        return check_variables(value)


class TemplateUpdate(TemplateFields):
    """The fields sent are changed (lists replace the stored ones); a secret environment
    variable sent without ``value`` keeps the value stored under its name."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scripts: list[ScriptChoice] | None = Field(default=None, max_length=100)
    target: Target | None = None
    options: ExecutionOptions | None = None
    environment: list[Variable] | None = Field(default=None, max_length=MAX_VARIABLES)
    cicd_steps: list[CicdStepRequest] | None = Field(default=None, max_length=50)
    parameters: list[Parameter] | None = Field(default=None, max_length=MAX_PARAMETERS)
    admin_only: bool | None = None
    approval: ApprovalSettings | None = Field(
        default=None, description="Replaces the approval settings (every field as sent)."
    )

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: list[Variable] | None) -> list[Variable] | None:
        return None if value is None else check_variables(value)


class LastSuccess(BaseModel):
    deployment_id: UUID
    commit_sha: str | None
    completed_at: datetime | None


class TemplateRead(BaseModel):
    id: UUID
    name: str
    description: str | None
    repository_id: UUID | None
    ref: str | None
    scripts: list[ScriptChoice]
    target: Target
    options: ExecutionOptions
    environment: list[VariableRead] = Field(description="A secret's value is always null.")
    cicd_steps: list[dict[str, Any]]
    parameters: list[Parameter]
    admin_only: bool
    approval: ApprovalSettings
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    last_success: LastSuccess | None = Field(
        default=None, description="The newest successful run: its commit is what roll back uses."
    )


class LaunchRequest(StrictModel):
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Values by parameter name: text, number, true/false, or a list for "
        "multi_choice.",
    )
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="This launch only: a branch, tag or commit SHA instead of the template's "
        "ref (a CI job deploys the commit it built).",
    )

    @field_validator("ref")
    @classmethod
    def _a_ref(cls, value: str | None) -> str | None:
        return validate_ref(value)

    freeze_override: FreezeOverride | None = Field(
        default=None,
        description="Admins only: launch although a freeze window is in force, with the "
        "written reason (audited as deployment.freeze_override).",
    )


class RollbackRequest(StrictModel):
    deployment_id: UUID = Field(description="An earlier successful run of this template.")
    freeze_override: FreezeOverride | None = Field(
        default=None,
        description="Admins only: roll back although a freeze window is in force, with the "
        "written reason.",
    )


class PreviewScript(BaseModel):
    id: UUID
    name: str
    path: str
    arguments: list[str] = Field(description="With {{ parameters }} filled in.")


class PreviewHost(BaseModel):
    id: UUID
    name: str


class Preview(BaseModel):
    commit_sha: str
    ref: str | None
    scripts: list[PreviewScript]
    hosts: list[PreviewHost]
    batches: list[list[PreviewHost]]
    parameters: dict[str, Any] = Field(description="The launch's values; a secret one as ***.")


class TemplateRun(BaseModel):
    id: UUID
    name: str
    status: DeploymentStatus
    ref: str | None
    commit_sha: str | None
    trigger: Trigger
    launched_by: LaunchedBy | None
    parameters: dict[str, Any]
    rerun_of: UUID | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
