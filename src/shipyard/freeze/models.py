"""Freeze windows: periods closed to deployments, recurring or fixed (0013)."""

from __future__ import annotations

from datetime import datetime
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
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, TimestampMixin, tenant_fk, uuid_pk

KINDS = ("recurring", "fixed")


class FreezeWindow(TimestampMixin, Base):
    __tablename__ = "freeze_windows"
    __table_args__ = (
        CheckConstraint("kind IN ('recurring', 'fixed')", name="kind"),
        CheckConstraint(
            "kind <> 'recurring' OR (cron IS NOT NULL AND duration_minutes > 0)",
            name="recurring",
        ),
        CheckConstraint(
            "kind <> 'fixed' OR (starts_at IS NOT NULL AND ends_at > starts_at)", name="fixed"
        ),
        UniqueConstraint("tenant_id", "name"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    # recurring: a five-field cron start (read in ``timezone``) and a duration.
    cron: Mapped[str | None] = mapped_column(Text)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default="UTC")
    # fixed: the period itself; recurring: optional bounds of when the window applies.
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Empty: the window closes every run of the tenant; else only runs of these templates or
    # runs touching hosts of these groups.
    template_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(PG_UUID(as_uuid=True)), nullable=False, server_default="{}"
    )
    group_ids: Mapped[list[UUID]] = mapped_column(
        ARRAY(PG_UUID(as_uuid=True)), nullable=False, server_default="{}"
    )
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
