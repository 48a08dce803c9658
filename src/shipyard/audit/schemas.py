"""Shapes of the audit trail: entries, their filters, streams and the retention setting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipyard.config import MAX_RETENTION_DAYS

Outcome = Literal["success", "failure", "denied"]
StreamType = Literal["syslog", "webhook"]


class AuditActor(BaseModel):
    id: UUID | None
    email: str | None


class AuditEntryRead(BaseModel):
    id: UUID
    at: datetime
    actor: AuditActor
    action: str
    resource_type: str
    resource_id: UUID | None
    changes: dict[str, Any] = Field(
        description="Per changed field: {before, after} (update), {after} (create), {before} "
        '(delete); a secret only as {"changed": true}.'
    )
    outcome: Outcome
    ip_address: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditFilters:
    """Which entries a list or an export covers; ``action`` ending in ``.`` is a prefix."""

    actor_id: UUID | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: UUID | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class SyslogConfig(BaseModel):
    """RFC 5424 messages over UDP, or TCP with octet-counting framing (RFC 6587)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=514, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    app_name: str = Field(default="shipyard", min_length=1, max_length=48, pattern=r"^[!-~]+$")


class WebhookConfig(BaseModel):
    """A POST of ``{"entries": [...]}`` signed ``X-Shipyard-Signature: sha256=<hex>``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")


class StreamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    type: StreamType
    config: SyslogConfig | WebhookConfig
    enabled: bool = True

    @model_validator(mode="after")
    def _config_fits_type(self) -> StreamCreate:
        expected = SyslogConfig if self.type == "syslog" else WebhookConfig
        if not isinstance(self.config, expected):
            fields = "host, port, protocol, app_name" if self.type == "syslog" else "url"
            raise ValueError(f"config of a {self.type} stream takes {fields}")
        return self


class StreamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    config: SyslogConfig | WebhookConfig | None = None
    enabled: bool | None = None


class StreamRead(BaseModel):
    id: UUID
    name: str
    type: StreamType
    config: dict[str, Any]
    enabled: bool
    has_secret: bool
    cursor_at: datetime | None
    last_error: str | None
    created_at: datetime


class StreamCreated(StreamRead):
    secret: str | None = Field(
        default=None, description="The webhook's signing secret: shown once, never again."
    )


class RetentionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="Days to keep entries; null: the installation's default.",
    )


class RetentionRead(BaseModel):
    retention_days: int | None
    effective_days: int
    default_days: int
