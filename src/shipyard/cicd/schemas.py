"""Request and response bodies of the CI/CD API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

ProviderType = Literal["jenkins", "github_actions", "circleci"]
StepStatus = Literal["pending", "queued", "running", "success", "failed", "cancelled"]
Stage = Literal["before", "after"]
ParameterType = Literal["string", "boolean", "choice", "password", "integer", "number"]


class StrictModel(BaseModel):
    """Rejects unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class CicdStepRequest(StrictModel):
    """One CI/CD job a deployment triggers, with its parameter values."""

    cicd_job_id: UUID
    parameters: dict[str, Any] = Field(default_factory=dict, max_length=200)
    stage: Stage = Field(
        default="before", description="Run before or after the deployment's host scripts."
    )


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


HttpUrlText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_http_url)]


class JenkinsConfig(StrictModel):
    username: str = Field(min_length=1, max_length=200)
    api_token: str = Field(min_length=1, max_length=1000, description="Write-only.")


class GithubActionsConfig(StrictModel):
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200)
    token: str | None = Field(
        default=None, min_length=1, max_length=1000, description="Write-only."
    )
    git_provider_id: UUID | None = Field(
        default=None, description="Use the token of this GitHub git provider instead of `token`."
    )
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Ref to dispatch on (default branch otherwise).",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> GithubActionsConfig:
        if (self.token is None) == (self.git_provider_id is None):
            raise ValueError("give exactly one of token or git_provider_id")
        return self


class CircleCIConfig(StrictModel):
    project_slugs: list[
        Annotated[
            str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=300)
        ]
    ] = Field(min_length=1, max_length=100, description="Like gh/acme/api.")
    token: str = Field(min_length=1, max_length=1000, description="Write-only.")
    branch: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Branch to run (default branch otherwise).",
    )
    app_url: HttpUrlText | None = None
    definition_ids: dict[str, UUID] | None = Field(
        default=None,
        description=(
            "Pipeline definition id per project slug. Projects connected through the CircleCI "
            "GitHub App (slugs like circleci/<org id>/<project id>) need one: they are started "
            "with pipeline/run, not the legacy trigger."
        ),
    )

    @model_validator(mode="after")
    def _definitions_match_projects(self) -> CircleCIConfig:
        definitions = self.definition_ids or {}
        unknown = sorted(set(definitions) - set(self.project_slugs))
        if unknown:
            raise ValueError(f"definition_ids names projects not in project_slugs: {unknown}")
        missing = [
            slug
            for slug in self.project_slugs
            if slug.startswith("circleci/") and slug not in definitions
        ]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} is connected through the CircleCI GitHub App; "
                "give its pipeline definition id in definition_ids"
            )
        return self


CONFIG_MODELS: dict[str, type[StrictModel]] = {
    "jenkins": JenkinsConfig,
    "github_actions": GithubActionsConfig,
    "circleci": CircleCIConfig,
}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "jenkins": ("api_token",),
    "github_actions": ("token",),
    "circleci": ("token",),
}


class ProviderCreate(StrictModel):
    type: ProviderType
    name: str = Field(min_length=1, max_length=200)
    url: HttpUrlText | None = Field(
        default=None,
        description="Jenkins base URL (required); API base URL for GitHub (Enterprise) or CircleCI.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Settings of the type; credentials in it are write-only and stored encrypted.",
    )


class ProviderUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    url: HttpUrlText | None = None
    config: dict[str, Any] | None = Field(
        default=None,
        description="Keys to change; omitted credentials are kept, null removes an optional key.",
    )


class ProviderRead(BaseModel):
    id: UUID
    type: ProviderType
    name: str
    url: str | None
    config: dict[str, Any] = Field(description="Non-secret settings and has_<credential> flags.")
    last_synced_at: datetime | None
    error: str | None
    sync_failures: int = Field(default=0, description="Consecutive failed syncs.")
    next_sync_at: datetime | None = Field(
        default=None, description="When a failing provider is tried again (backing off)."
    )
    job_count: int
    created_at: datetime
    updated_at: datetime


class ProviderCheck(BaseModel):
    """The connection test's answer; a refusal or an outage upstream is ``ok: false``, not an error."""

    ok: bool
    message: str
    code: str | None = Field(
        default=None,
        description="Why it failed, when it did: provider_unauthorized, provider_forbidden, "
        "upstream_not_found, provider_unreachable, provider_rate_limited, provider_error.",
    )


class SyncQueued(BaseModel):
    status: Literal["queued", "already_queued"]
    job_id: int | None


class JobParameterRead(BaseModel):
    name: str
    type: ParameterType
    default: Any = None
    choices: list[str] | None = None
    description: str | None = None
    required: bool = False


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    provider_id: UUID
    external_id: str
    name: str
    path: str | None
    description: str | None
    parameters: list[JobParameterRead]
    buildable: bool = Field(
        description="False for a job the provider will not start (a disabled Jenkins job)."
    )
    created_at: datetime
    updated_at: datetime


class MappingRead(BaseModel):
    id: UUID
    deployment_id: UUID
    cicd_job_id: UUID | None
    job_name: str | None
    job_path: str | None
    provider_id: UUID | None
    provider_type: ProviderType | None
    stage: Stage
    position: int
    status: StepStatus
    waiting_for: Literal["approval"] | None = Field(
        default=None, description="Set while a running build is paused on an approval."
    )
    parameters: dict[str, Any] = Field(description="Password values are shown as ***.")
    build_number: str | None
    build_url: str | None
    error: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
