"""Hosts that Shipyard runs scripts on, with their credentials and trust state."""

from __future__ import annotations

from datetime import datetime
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
    # The worker pool that can reach it (0011); None: its groups' pool, else any worker.
    pool: Mapped[str | None] = mapped_column(Text)


class HostGroup(TimestampMixin, Base):
    """A tenant's named set of hosts (a host may be in several), with its variables (0010)."""

    __tablename__ = "host_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The worker pool that can reach its members (0011), unless a host names its own.
    pool: Mapped[str | None] = mapped_column(Text)


class HostGroupMember(Base):
    __tablename__ = "host_group_members"

    group_id: Mapped[UUID] = mapped_column(
        ForeignKey("host_groups.id", ondelete="CASCADE"), primary_key=True
    )
    host_id: Mapped[UUID] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[UUID] = tenant_fk()


class HostTag(Base):
    __tablename__ = "host_tags"
    __table_args__ = (Index("ix_host_tags_tenant_id_tag", "tenant_id", "tag"),)

    host_id: Mapped[UUID] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[UUID] = tenant_fk()


class InventoryVariable(Base):
    """A variable of one host or one group; a secret's value is stored only encrypted."""

    __tablename__ = "inventory_variables"
    __table_args__ = (
        CheckConstraint("(host_id IS NULL) <> (group_id IS NULL)", name="one_owner"),
        CheckConstraint(
            "(secret AND value IS NULL AND secret_value IS NOT NULL) "
            "OR (NOT secret AND value IS NOT NULL AND secret_value IS NULL)",
            name="one_value",
        ),
        UniqueConstraint("host_id", "name"),
        UniqueConstraint("group_id", "name"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    host_id: Mapped[UUID | None] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    group_id: Mapped[UUID | None] = mapped_column(ForeignKey("host_groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    secret: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    value: Mapped[str | None] = mapped_column(Text)
    secret_value: Mapped[str | None] = mapped_column(EncryptedText)
