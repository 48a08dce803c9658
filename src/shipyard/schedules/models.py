"""Cron schedules on templates and the record of each fire time (0012)."""

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
    Text,
    UniqueConstraint,
    text,
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
    uuid_pk,
)

OVERLAP_POLICIES = ("skip", "queue", "allow")
MISSED_POLICIES = ("skip", "run_once")
FIRE_VERDICTS = ("ran", "queued", "skipped", "missed", "failed")


class Schedule(TimestampMixin, Base):
    __tablename__ = "schedules"
    __table_args__ = (
        CheckConstraint("overlap_policy IN ('skip', 'queue', 'allow')", name="overlap_policy"),
        CheckConstraint("missed_policy IN ('skip', 'run_once')", name="missed_policy"),
        # The scheduler's scan: enabled schedules by next fire time.
        Index(
            "ix_schedules_next_fire_at",
            "next_fire_at",
            postgresql_where=text("enabled AND next_fire_at IS NOT NULL"),
        ),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    template_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("templates.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    name: Mapped[str | None] = mapped_column(Text)
    # Five fields or an @-preset, read in ``timezone`` (an IANA name).
    cron: Mapped[str] = mapped_column(Text, nullable=False)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default="UTC")
    # Launch parameter values; secret ones live only in ``secret_parameters`` (one JSON object).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    secret_parameters: Mapped[str | None] = mapped_column(EncryptedText)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    overlap_policy: Mapped[str] = mapped_column(Text, nullable=False, server_default="skip")
    missed_policy: Mapped[str] = mapped_column(Text, nullable=False, server_default="skip")
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept by the scheduler (UTC); NULL when paused or past ``ends_at``.
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )


class ScheduleFire(Base):
    """One fire time of one schedule; the unique key makes each fire happen at most once."""

    __tablename__ = "schedule_fires"
    __table_args__ = (
        CheckConstraint(
            "verdict IN ('ran', 'queued', 'skipped', 'missed', 'failed')", name="verdict"
        ),
        UniqueConstraint("schedule_id", "fire_time"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    schedule_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("schedules.id", ondelete="CASCADE"), nullable=False
    )
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    verdict: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    deployment_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("deployments.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = created_at_column()
