"""Request and response bodies of the webhooks API (the secret only in WebhookCreated)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.webhooks.filters import check_pattern

Provider = Literal["github", "gitlab", "gitea", "generic"]
GenericAuth = Literal["hmac", "bearer"]
EventKind = Literal["push", "tag", "release"]
Verdict = Literal["ran", "filtered", "refused", "duplicate", "skipped"]
MAX_PATTERNS = 50
MAX_MAPPED = 100
# A dotted path into the payload: keys and list indexes.
PATH_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+){0,15}$"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _patterns(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    try:
        return [check_pattern(value) for value in values]
    except ValueError as exc:
        raise ValueError(str(exc)) from exc


def _events(values: list[EventKind] | None) -> list[EventKind] | None:
    if values is None:
        return None
    return list(dict.fromkeys(values))


class WebhookFields(StrictModel):
    events: list[EventKind] | None = Field(
        default=None, min_length=1, max_length=3, description="push, tag, release."
    )
    branches: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description="Glob patterns of branches a push must match (empty: any).",
    )
    tags: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description="Glob patterns of tags a tag push or release must match (empty: any).",
    )
    paths: list[str] | None = Field(
        default=None,
        max_length=MAX_PATTERNS,
        description="Glob patterns (** spans directories); a push runs when a changed path "
        "matches one (empty: any).",
    )
    parameter_map: dict[str, str] | None = Field(
        default=None,
        max_length=MAX_MAPPED,
        description="Template parameter name -> dotted path into the payload "
        "(e.g. head_commit.message).",
    )
    enabled: bool | None = None

    _check_patterns = field_validator("branches", "tags", "paths")(_patterns)
    _check_events = field_validator("events")(_events)

    @field_validator("parameter_map")
    @classmethod
    def _paths(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        import re

        for name, path in (value or {}).items():
            if not re.match(PATH_PATTERN, path):
                raise ValueError(f"{name}: {path!r} is not a dotted path (a.b.0.c)")
        return value


class WebhookCreate(WebhookFields):
    provider: Provider
    auth: GenericAuth = Field(
        default="hmac",
        description="Generic hooks: hmac (X-Shipyard-Signature: sha256=<hex>) or bearer "
        "(Authorization: Bearer <secret>).",
    )


class WebhookUpdate(WebhookFields):
    """The fields sent are changed (lists replace the stored ones)."""

    auth: GenericAuth | None = None


class WebhookRead(BaseModel):
    id: UUID
    template_id: UUID
    provider: Provider
    auth: GenericAuth
    url: str
    events: list[str]
    branches: list[str]
    tags: list[str]
    paths: list[str]
    parameter_map: dict[str, str]
    enabled: bool
    remote_hook_id: str | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(BaseModel):
    """The answer of creation and rotation: the only time the secret is shown."""

    id: UUID
    url: str
    secret: str
    webhook: WebhookRead


class DeliveryRead(BaseModel):
    id: UUID
    webhook_id: UUID
    delivery_id: str | None
    event: str | None
    verdict: Verdict
    reason: str | None
    deployment_id: UUID | None
    ref: str | None
    commit: str | None
    received_at: datetime


class InboundAnswer(BaseModel):
    """What a provider sees: the verdict and, for a run, its deployment."""

    verdict: Verdict
    reason: str | None = None
    deployment_id: UUID | None = None
    delivery: UUID | None = None
