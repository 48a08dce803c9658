"""Hosts that Shipyard runs scripts on, with their credentials and trust state."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, EncryptedText, TimestampMixin, check_in, tenant_fk, uuid_pk

HOST_TYPES = ("ssh", "local")
HOST_STATUSES = ("online", "offline", "auth_failed", "host_key_mismatch", "unknown")
HOST_AUTH_METHODS = ("password", "key")


class Host(TimestampMixin, Base):
    __tablename__ = "hosts"
    __table_args__ = (
        CheckConstraint(check_in("type", HOST_TYPES), name="type"),
        CheckConstraint(check_in("status", HOST_STATUSES), name="status"),
        CheckConstraint(check_in("auth_method", HOST_AUTH_METHODS), name="auth_method"),
        CheckConstraint("port IS NULL OR (port BETWEEN 1 AND 65535)", name="port"),
        UniqueConstraint("tenant_id", "name"),
        Index("ix_hosts_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    )

    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text, nullable=False, server_default="ssh")
    ip: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer, server_default="22")
    user: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="unknown")
    is_windows: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    auth_method: Mapped[str | None] = mapped_column(Text)
    private_key: Mapped[str | None] = mapped_column(EncryptedText)
    private_key_passphrase: Mapped[str | None] = mapped_column(EncryptedText)
    public_key: Mapped[str | None] = mapped_column(Text)
    host_key_fingerprint: Mapped[str | None] = mapped_column(Text)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    round_trip_ms: Mapped[int | None] = mapped_column(Integer)
    os_info: Mapped[str | None] = mapped_column(Text)
    status_message: Mapped[str | None] = mapped_column(Text)
    # The key presented at the last mismatch, waiting for an admin to accept it (0002).
    pending_host_key_fingerprint: Mapped[str | None] = mapped_column(Text)
