"""Tenants, users (modelled on Supabase ``auth.users``), profiles, tokens and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, Text
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shipyard.orm import Base, TimestampMixin, check_in, created_at_column, tenant_fk, uuid_pk

ROLES = ("admin", "developer", "viewer")
TOKEN_KINDS = ("session", "personal")
DISABLED_REASONS = ("admin", "sso_no_role")


class Tenant(TimestampMixin, Base):
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(check_in("sso_default_role", ROLES), name="sso_default_role"),
    )

    id: Mapped[UUID] = uuid_pk()
    name: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(Text)
    # Days to keep the tenant's audit entries; NULL: SHIPYARD_AUDIT_RETENTION_DAYS (0013).
    audit_retention_days: Mapped[int | None] = mapped_column(Integer)
    # 0015, log retention: delete finished runs' log lines after N days, and/or keep at most N
    # lines per run (the newest); NULL: keep (the installation's defaults apply).
    log_retention_days: Mapped[int | None] = mapped_column(Integer)
    log_retention_lines: Mapped[int | None] = mapped_column(Integer)
    # 0014, the tenant's log-in policy: the slug of its own log-in URL (/login/t/<slug>); the
    # role of an SSO user no rule matches (NULL: refuse them); whether members must sign in
    # through SSO; and the one admin who may still use a password then (break glass).
    login_slug: Mapped[str | None] = mapped_column(Text, unique=True)
    sso_default_role: Mapped[str | None] = mapped_column(Text)
    sso_required: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    sso_break_glass_profile_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("profiles.id", ondelete="SET NULL", use_alter=True),
        index=True,
    )


class User(TimestampMixin, Base):
    """A person who can sign in; ``profiles.id`` equals ``users.id`` as in Supabase."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(check_in("disabled_reason", DISABLED_REASONS), name="disabled_reason"),
    )

    id: Mapped[UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    encrypted_password: Mapped[str] = mapped_column(Text, nullable=False)
    full_name: Mapped[str | None] = mapped_column(Text)
    is_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # 0014: why the account is disabled: "admin" (an admin deactivated it) or "sso_no_role"
    # (their groups stopped mapping to a role; the next mapped SSO log-in enables it again).
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Profile(TimestampMixin, Base):
    __tablename__ = "profiles"
    __table_args__ = (CheckConstraint(check_in("role", ROLES), name="role"),)

    id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    avatar_url: Mapped[str | None] = mapped_column(Text)
    # The seed types this text; uuid makes the foreign key real (docs/decisions.md).
    tenant_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default="viewer")
    tenant_name: Mapped[str | None] = mapped_column(Text)


class ApiToken(TimestampMixin, Base):
    """A bearer token: a log-in session or a personal token for automation; stored hashed."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(check_in("kind", TOKEN_KINDS), name="kind"),)

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    profile_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("profiles.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    token_prefix: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """A failed log-in, counted per account and per address for brute-force protection."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_created_at", "email", "created_at"),
        Index("ix_login_failures_ip_address_created_at", "ip_address", "created_at"),
    )

    id: Mapped[UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(Text, nullable=False)
    ip_address: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class SignupAttempt(Base):
    """A sign-up request, counted per client address to throttle open sign-up."""

    __tablename__ = "signup_attempts"
    __table_args__ = (
        Index("ix_signup_attempts_ip_address_created_at", "ip_address", "created_at"),
    )

    id: Mapped[UUID] = uuid_pk()
    ip_address: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()


class Invitation(TimestampMixin, Base):
    """An admin's invitation to join the tenant with a role: a single-use link, stored hashed."""

    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(check_in("role", ROLES), name="role"),)

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    email: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    token_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    invited_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """Who did what to which resource; the audit-log view reads this."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_audit_events_tenant_id_action_created_at", "tenant_id", "action", "created_at"),
        CheckConstraint("outcome IN ('success', 'failure', 'denied')", name="outcome"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    actor_profile_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(Text, nullable=False)
    resource_type: Mapped[str] = mapped_column(Text, nullable=False)
    resource_id: Mapped[UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    ip_address: Mapped[str | None] = mapped_column(INET)
    created_at: Mapped[datetime] = created_at_column()
    # 0013: the actor's email as it was then; before/after of changed fields (secrets masked);
    # whether the action succeeded, failed or was denied.
    actor_email: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default="success")
