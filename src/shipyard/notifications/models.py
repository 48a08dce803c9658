"""Notification channels, the rules that route events to them, and each delivery (0013)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import (
    Base,
    EncryptedText,
    TimestampMixin,
    created_at_column,
    tenant_fk,
    updated_at_column,
    uuid_pk,
)

CHANNEL_TYPES = ("email", "slack", "teams", "discord", "ntfy", "webhook")
SCOPE_TYPES = ("tenant", "template", "repository")
DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed")
EVENTS = (
    "deployment.started",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.partial",
    "deployment.cancelled",
    "schedule.missed",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "host.offline",
    "host.key_changed",
    "provider.sync_failed",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class NotificationChannel(TimestampMixin, Base):
    __tablename__ = "notification_channels"
    __table_args__ = (
        CheckConstraint(_in("type", CHANNEL_TYPES), name="type"),
        UniqueConstraint("tenant_id", "name"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    # The type's plain settings (SMTP host, port, security, from, to; ntfy server and topic...).
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # The type's secret settings, one encrypted JSON object: the SMTP password, the Slack,
    # Teams and Discord webhook URLs (their path is the credential), the ntfy token, the
    # generic webhook's signing secret. Never returned.
    secret_config: Mapped[str | None] = mapped_column(EncryptedText)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )


class NotificationRule(TimestampMixin, Base):
    __tablename__ = "notification_rules"
    __table_args__ = (
        CheckConstraint(_in("scope_type", SCOPE_TYPES), name="scope_type"),
        CheckConstraint("(scope_type = 'tenant') = (scope_id IS NULL)", name="scope_id"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("notification_channels.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    events: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    scope_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="tenant")
    # The template or repository for those scopes; NULL for the whole tenant.
    scope_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    only_on_change: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )


class NotificationDelivery(Base):
    """One message to one channel (a rule's match, or a "send test"), sent by the job queue."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_notification_deliveries_channel_id_created_at", "channel_id", "created_at"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    channel_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("notification_channels.id", ondelete="CASCADE"),
        nullable=False,
    )
    rule_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("notification_rules.id", ondelete="SET NULL"),
        index=True,
    )
    event: Mapped[str] = mapped_column(Text, nullable=False)
    subject_type: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    # The facts the message is rendered from (name, status, trigger, commit, hosts, link).
    message: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationAttempt(Base):
    """One attempt at a delivery: what the receiver answered (HTTP status, SMTP reply) or the
    error."""

    __tablename__ = "notification_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "attempt"),)

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    delivery_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = created_at_column()
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    status_code: Mapped[int | None] = mapped_column(Integer)
    reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class NotificationRuleState(Base):
    """ "Only on change": the last event a rule saw for one subject (a template, a repository)."""

    __tablename__ = "notification_rule_states"

    tenant_id: Mapped[UUID] = tenant_fk()
    rule_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("notification_rules.id", ondelete="CASCADE"),
        primary_key=True,
    )
    subject_key: Mapped[str] = mapped_column(Text, primary_key=True)
    last_event: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = updated_at_column()
