"""CI/CD provider connections, their job catalogue and deployment steps that trigger jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, TimestampMixin, check_in, tenant_fk, uuid_pk

CICD_PROVIDER_TYPES = ("jenkins", "github_actions", "circleci")
CICD_STEP_STATUSES = ("pending", "queued", "running", "success", "failed", "cancelled")
CICD_STAGES = ("before", "after")


class CicdProvider(TimestampMixin, Base):
    __tablename__ = "cicd_providers"
    __table_args__ = (CheckConstraint(check_in("type", CICD_PROVIDER_TYPES), name="type"),)

    id: Mapped[UUID] = uuid_pk()
    type: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str | None] = mapped_column(Text)
    # Non-secret settings in clear; secret values as {"$encrypted": "<ciphertext>"}.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    profile_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # A provider whose sync keeps failing backs off instead of being retried every minute.
    sync_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CicdJob(TimestampMixin, Base):
    __tablename__ = "cicd_jobs"
    __table_args__ = (UniqueConstraint("provider_id", "external_id"),)

    id: Mapped[UUID] = uuid_pk()
    provider_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("cicd_providers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    external_id: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    tenant_id: Mapped[UUID] = tenant_fk()
    # Additions
    # False when the provider will refuse to start the job (a disabled Jenkins job).
    buildable: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")


class DeploymentCicdMapping(TimestampMixin, Base):
    __tablename__ = "deployment_cicd_mappings"
    __table_args__ = (
        CheckConstraint(check_in("status", CICD_STEP_STATUSES), name="status"),
        CheckConstraint(check_in("stage", CICD_STAGES), name="stage"),
    )

    id: Mapped[UUID] = uuid_pk()
    deployment_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("deployments.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    cicd_job_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("cicd_jobs.id", ondelete="SET NULL"), index=True
    )
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    build_number: Mapped[str | None] = mapped_column(Text)
    build_url: Mapped[str | None] = mapped_column(Text)
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    stage: Mapped[str] = mapped_column(Text, nullable=False, server_default="before")
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The provider client's own progress (queue item, run id, console offset), so a step is
    # followed, never re-triggered, after a worker restart. Never holds secrets.
    tracking: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
