"""Where new audit entries are streamed (syslog or a webhook), and how far each stream got (0013).

The entries themselves are ``shipyard.accounts.models.AuditEvent`` (written by every action).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, EncryptedText, TimestampMixin, tenant_fk, uuid_pk

STREAM_TYPES = ("syslog", "webhook")


class AuditStream(TimestampMixin, Base):
    __tablename__ = "audit_streams"
    __table_args__ = (
        CheckConstraint("type IN ('syslog', 'webhook')", name="type"),
        UniqueConstraint("tenant_id", "name"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    # syslog: {host, port, protocol: udp|tcp, app_name}; webhook: {url}.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # The webhook's signing secret (X-Shipyard-Signature); never returned.
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # The last entry sent, as (created_at, id): the stream resumes after it.
    cursor_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cursor_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
