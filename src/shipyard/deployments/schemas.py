"""Request and response bodies of the deployments API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shipyard.cicd.schemas import CicdStepRequest
from shipyard.deployments.redaction import MIN_SECRET_LENGTH
from shipyard.errors import ValidationFailed
from shipyard.freeze.schemas import FreezeOverride
from shipyard.git.refs import validate_ref
from shipyard.hosts.environment import refusal_message
from shipyard.hosts.schemas import Target

# ``interrupted``: the worker running it was stopped (SIGTERM) and its grace period ran out.
# ``pending_approval``: a run of a template that requires approval, waiting for its approvers.
DeploymentStatus = Literal[
    "pending",
    "scheduled",
    "in_progress",
    "success",
    "failed",
    "partial",
    "cancelled",
    "interrupted",
    "pending_approval",
]
ScriptStatus = Literal[
    "pending", "running", "success", "failed", "skipped", "cancelled", "interrupted"
]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptChoice(StrictModel):
    script_id: UUID
    arguments: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("arguments")
    @classmethod
    def _argument_sizes(cls, value: list[str]) -> list[str]:
        if any(len(argument) > 4096 for argument in value):
            raise ValueError("an argument is longer than 4096 characters")
        return value


class EnvironmentVariable(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    # Before ``value``, so that the value's check knows whether it is a secret.
    secret: bool = False
    value: str = Field(max_length=65536)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError("must start with a letter or _ and hold only letters, digits and _")
        # Names that make shells, the loader or runtimes run other code (hosts.environment).
        refused = refusal_message(value)
        if refused is not None:
            raise ValueError(refused)
        return value

    @field_validator("value")
    @classmethod
    def _valid_value(cls, value: str, info: ValidationInfo) -> str:
        name = info.data.get("name", "the variable")
        if "\x00" in value:
            raise ValueError(f"the value of {name} holds a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the value of {name} is not valid text") from exc
        if info.data.get("secret") and len(value.strip()) < MIN_SECRET_LENGTH:
            # Output is masked only for secrets of at least this length (a shorter one would
            # mask ordinary words), so a shorter secret would be shown in the logs.
            raise ValueError(
                f"the secret value of {name} is shorter than {MIN_SECRET_LENGTH} characters, "
                "too short to be masked in logs: use a longer value or make it a plain variable"
            )
        return value


def stored_environment(
    plain: Mapping[str, str], secret: Mapping[str, str]
) -> list[EnvironmentVariable]:
    """A stored deployment's environment as request items, checked against today's rules.

    A deployment stored before a name was refused (or a short secret was) cannot be run
    again with it: the refusal is a 422 naming the variable, as for a new deployment.
    """
    items: list[EnvironmentVariable] = []
    stored = [(k, v, False) for k, v in plain.items()] + [(k, v, True) for k, v in secret.items()]
    for index, (name, value, is_secret) in enumerate(stored):
        try:
            items.append(EnvironmentVariable(name=name, value=value, secret=is_secret))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "name"
            message = str(error["msg"]).removeprefix("Value error, ")
            raise ValidationFailed(
                f"environment.{index}.{where} ({name}): {message}",
                field=f"environment.{index}.{where}",
            ) from exc
    return items


class ExecutionOptions(StrictModel):
    parallelism: int = Field(default=20, ge=1, le=1000, description="Hosts run at once.")
    batch_size: int | None = Field(
        default=None, ge=1, le=100000, description="Hosts per rolling batch."
    )
    batch_percent: int | None = Field(
        default=None, ge=1, le=100, description="Hosts per batch, as a percentage."
    )
    stop_on_failure: bool = Field(
        default=False, description="Stop every host at the first failure."
    )
    max_failure_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Abort remaining batches past this share of failed hosts.",
    )
    script_timeout_seconds: int | None = Field(default=3600, ge=1, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _one_batch_rule(self) -> ExecutionOptions:
        if self.batch_size is not None and self.batch_percent is not None:
            raise ValueError("give batch_size or batch_percent, not both")
        return self


class DeploymentCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    repository_id: UUID | None = None
    ref: str | None = Field(default=None, min_length=1, max_length=255)
    scripts: list[ScriptChoice] = Field(default_factory=list, max_length=100)
    script_ids: list[UUID] = Field(
        default_factory=list, max_length=100, description="Shorthand for scripts without arguments."
    )
    host_ids: list[UUID] = Field(default_factory=list, max_length=10000)
    target: Target | None = Field(
        default=None,
        description="Hosts by rule (groups and tags), resolved again when the run starts; "
        "host_ids given beside it join its host_ids.",
    )
    environment: list[EnvironmentVariable] = Field(default_factory=list, max_length=500)
    schedule: Literal["now", "later"] = "now"
    scheduled_time: datetime | None = None
    options: ExecutionOptions = Field(default_factory=ExecutionOptions)
    cicd_steps: list[CicdStepRequest] = Field(default_factory=list, max_length=50)
    freeze_override: FreezeOverride | None = Field(
        default=None,
        description="Admins only: start the run although a freeze window is in force, with "
        "the written reason (audited as deployment.freeze_override).",
    )

    @field_validator("ref")
    @classmethod
    def _a_ref(cls, value: str | None) -> str | None:
        # A branch, tag or commit, never a refspec or an option (``+refs/*:refs/*``, ``--x``).
        return validate_ref(value)

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentCreate:
        if self.scripts and self.script_ids:
            raise ValueError("give scripts or script_ids, not both")
        if self.schedule == "later" and self.scheduled_time is None:
            raise ValueError("scheduled_time is required when schedule is 'later'")
        if self.scheduled_time is not None and self.scheduled_time.tzinfo is None:
            raise ValueError("scheduled_time needs a timezone, e.g. 2030-01-01T12:00:00Z")
        names = [variable.name for variable in self.environment]
        if len(names) != len(set(names)):
            raise ValueError("environment variable names must be unique")
        return self

    def script_choices(self) -> list[ScriptChoice]:
        return self.scripts or [ScriptChoice(script_id=script_id) for script_id in self.script_ids]


class DeploymentUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    scheduled_time: datetime | None = None

    @field_validator("scheduled_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("scheduled_time needs a timezone")
        return value


Trigger = Literal["manual", "api", "schedule", "webhook"]


class LaunchedBy(BaseModel):
    """Who or what launched a run, as it was at launch (a revoked token keeps its name here)."""

    kind: Literal["user", "token", "schedule", "webhook"]
    id: UUID | None = None
    name: str | None = None


class Decider(BaseModel):
    id: UUID | None
    email: str | None


class ApprovalDecision(BaseModel):
    """One approver's decision on a run that waited in pending_approval."""

    decided_by: Decider
    decision: Literal["approved", "rejected"]
    comment: str | None
    at: datetime


class DeploymentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    description: str | None
    repository_id: UUID | None
    status: DeploymentStatus
    schedule: Literal["now", "later"]
    scheduled_time: datetime | None
    script_ids: list[UUID]
    host_ids: list[UUID]
    created_by: UUID | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    ref: str | None
    commit_sha: str | None
    script_arguments: dict[str, list[str]]
    environment: dict[str, str] = Field(
        description="Plain variables; secret ones are listed by name only."
    )
    secret_environment_names: list[str]
    options: dict[str, Any]
    error: str | None
    cancel_requested_at: datetime | None
    rerun_of: UUID | None
    template_id: UUID | None = None
    trigger: Trigger = "manual"
    launched_by: LaunchedBy | None = None
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The launch's parameter values; a secret one as ***."
    )
    target: dict[str, Any] | None = Field(
        default=None, description="The target rule; host_ids holds the hosts it resolved to."
    )
    schedule_id: UUID | None = Field(
        default=None, description="The schedule that fired it (trigger schedule)."
    )
    webhook_id: UUID | None = Field(
        default=None, description="The webhook whose delivery fired it (trigger webhook)."
    )
    freeze_window_id: UUID | None = Field(
        default=None, description="The freeze window an admin's override let it start in."
    )
    freeze_override_reason: str | None = Field(
        default=None, description="The written reason of that override."
    )
    approvals_needed: int | None = Field(
        default=None, description="Approvals the run waits for (its template requires them)."
    )
    approval_expires_at: datetime | None = Field(
        default=None, description="When a run still pending_approval is cancelled."
    )
    approvals: list[ApprovalDecision] = Field(
        default_factory=list,
        description="The approvers' decisions, oldest first (filled on a single deployment).",
    )
    log_pruned_at: datetime | None = Field(
        default=None,
        description="When the tenant's log retention policy deleted (some of) its log lines.",
    )


class DeploymentScriptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    deployment_id: UUID
    script_id: UUID | None
    host_id: UUID | None
    name: str | None
    path: str | None
    position: int
    arguments: list[str]
    status: ScriptStatus
    started_at: datetime | None
    completed_at: datetime | None
    exit_code: int | None
    output: str | None
    error: str | None
    worker_id: str | None = Field(
        default=None, description="The worker that ran it (worker pools are checked through it)."
    )
    created_at: datetime
    updated_at: datetime


class DeploymentLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    seq: int
    deployment_id: UUID
    level: LogLevel
    message: str
    timestamp: datetime
    host_id: UUID | None
    deployment_script_id: UUID | None
    # A script's output: "stdout" or "stderr" (both at level INFO); null for Shipyard's events.
    stream: Literal["stdout", "stderr"] | None = None


class LogPage(BaseModel):
    items: list[DeploymentLogRead]
    next_cursor: str | None = None


# Log reads by line (issue 17): ranges by offset, search, landmarks.
LogStream = Literal["stdout", "stderr"]


class LogLineRead(BaseModel):
    """One line of a log range: ``line`` is its 1-based number in the filtered view."""

    line: int
    seq: int
    timestamp: datetime
    host_id: UUID | None
    script_id: UUID | None = Field(description="The deployment_scripts row it belongs to")
    level: LogLevel
    stream: LogStream | None
    message: str


class LogRange(BaseModel):
    """Lines ``offset + 1`` to ``offset + len(lines)`` of the view; ``total`` lines in all."""

    total: int
    offset: int
    # The sequence number of the view's last line: the live stream resumes after it.
    last_seq: int | None
    lines: list[LogLineRead]
    # The number of the view's first line: 1, except for the whole log of a run whose first
    # lines retention pruned (its lines keep their own numbers, so permalinks outlive pruning).
    first_line: int = 1


class LogSearchResult(BaseModel):
    count: int
    matches: list[int] = Field(description="Line numbers of the first matches, in order")
    truncated: bool


class FailedScriptLandmark(BaseModel):
    script_id: UUID
    host_id: UUID | None
    line: int | None


class LogLandmarks(BaseModel):
    first_error_line: int | None
    first_failed_script: FailedScriptLandmark | None
