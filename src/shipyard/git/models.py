"""Git provider connections, synced repositories and pins."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import (
    Base,
    EncryptedText,
    TimestampMixin,
    check_in,
    created_at_column,
    tenant_fk,
    uuid_pk,
)

GIT_PROVIDER_TYPES = ("github", "gitlab", "gitea")
REPOSITORY_PROVIDER_TYPES = (*GIT_PROVIDER_TYPES, "url")
SYNC_STATUSES = ("pending", "syncing", "synced", "error")


class GitProvider(TimestampMixin, Base):
    __tablename__ = "git_providers"
    __table_args__ = (
        CheckConstraint(check_in("type", GIT_PROVIDER_TYPES), name="type"),
        CheckConstraint(check_in("sync_status", SYNC_STATUSES), name="sync_status"),
    )

    id: Mapped[UUID] = uuid_pk()
    profile_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    display_name: Mapped[str | None] = mapped_column(Text)
    server_url: Mapped[str | None] = mapped_column(Text)
    access_token: Mapped[str | None] = mapped_column(EncryptedText)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedText)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_configured: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    last_synced: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    sync_status: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class Repository(TimestampMixin, Base):
    __tablename__ = "repositories"
    __table_args__ = (
        CheckConstraint(check_in("provider_type", REPOSITORY_PROVIDER_TYPES), name="provider_type"),
        CheckConstraint(check_in("sync_status", SYNC_STATUSES), name="sync_status"),
        UniqueConstraint("provider_id", "external_id"),
    )

    id: Mapped[UUID] = uuid_pk()
    # Nullable: a public repository can be added by URL without a provider.
    provider_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("git_providers.id", ondelete="CASCADE"), index=True
    )
    provider_type: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    is_private: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    default_branch: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(Text)
    sync_status: Mapped[str | None] = mapped_column(Text, server_default="pending")
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # Additions
    tenant_id: Mapped[UUID] = tenant_fk()
    external_id: Mapped[str | None] = mapped_column(Text)
    clone_url: Mapped[str | None] = mapped_column(Text)


class ProfileRepositoryPin(Base):
    __tablename__ = "profile_repository_pins"

    profile_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    repository_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("repositories.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
    created_at: Mapped[datetime] = created_at_column()
    tenant_id: Mapped[UUID] = tenant_fk()


class GitOAuthApp(TimestampMixin, Base):
    """A tenant's OAuth application at one provider server (client id and encrypted secret)."""

    __tablename__ = "git_oauth_apps"
    __table_args__ = (
        CheckConstraint(check_in("type", GIT_PROVIDER_TYPES), name="type"),
        UniqueConstraint("tenant_id", "type", "server_url"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    type: Mapped[str] = mapped_column(Text, nullable=False)
    # The server's URL, or the public service's (https://github.com, https://gitlab.com).
    server_url: Mapped[str] = mapped_column(Text, nullable=False)
    client_id: Mapped[str] = mapped_column(Text, nullable=False)
    client_secret: Mapped[str] = mapped_column(EncryptedText, nullable=False)
    profile_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )


class GitOAuthState(Base):
    """An OAuth ``state`` that has been redeemed; a second callback with it is a replay."""

    __tablename__ = "git_oauth_states"

    nonce: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[UUID] = tenant_fk()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime] = created_at_column()
