"""Templates: a saved run (repository, ref, scripts, target, options, environment, CI/CD steps)
with typed launch parameters (0011)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, EncryptedText, TimestampMixin, tenant_fk, uuid_pk


class Template(TimestampMixin, Base):
    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint("approver_role IN ('admin', 'developer', 'viewer')", name="approver_role"),
        CheckConstraint("approvals_needed BETWEEN 1 AND 10", name="approvals_needed"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    repository_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("repositories.id", ondelete="SET NULL"), index=True
    )
    # A branch (resolved to its newest commit at launch), a tag or a full commit SHA.
    ref: Mapped[str | None] = mapped_column(Text)
    # [{script_id, arguments}], in run order; arguments may hold ``{{ parameter }}``.
    scripts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    # {host_ids, group_ids, tags}: resolved when each run starts.
    target: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    environment: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # JSON object of secret environment variables, encrypted as one value.
    secret_environment: Mapped[str | None] = mapped_column(EncryptedText)
    # [{cicd_job_id, parameters, stage}]
    cicd_steps: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    # [{name, type, required, default, choices, pattern, min, max, description}]; a secret
    # parameter's default is never stored here (see decisions.md).
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    # Only admins may launch it (developers still edit it).
    admin_only: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # Approvals (0013): runs wait in ``pending_approval`` until ``approvals_needed`` people of
    # at least ``approver_role`` approve (the requester only if ``allow_self_approval``), for
    # at most ``approval_timeout_minutes``.
    approval_required: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    approvals_needed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    approver_role: Mapped[str] = mapped_column(Text, nullable=False, server_default="developer")
    allow_self_approval: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    approval_timeout_minutes: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="1440"
    )
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
