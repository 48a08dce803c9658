"""The approvers' decisions on runs waiting in ``pending_approval`` (0013)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import CheckConstraint, ForeignKey, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, created_at_column, tenant_fk, uuid_pk

DECISIONS = ("approved", "rejected")


class DeploymentApproval(Base):
    """One person's decision on one run (at most one each), with its comment."""

    __tablename__ = "deployment_approvals"
    __table_args__ = (
        CheckConstraint("decision IN ('approved', 'rejected')", name="decision"),
        UniqueConstraint("deployment_id", "decided_by"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    deployment_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("deployments.id", ondelete="CASCADE"), nullable=False
    )
    decided_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    # The decider's email as it was then (the profile may be deleted later).
    decider_email: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(Text, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
