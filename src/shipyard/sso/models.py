"""Single sign-on: identity providers, group-to-role rules, linked identities, log-in states (0014).

The tenant's log-in policy (its log-in URL slug, the default role, whether SSO is required and
the break-glass account) lives on ``tenants`` (``shipyard.accounts.models.Tenant``): password
log-in, which accounts owns, enforces it.
"""

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

from shipyard.orm import (
    Base,
    EncryptedText,
    TimestampMixin,
    created_at_column,
    tenant_fk,
    uuid_pk,
)

PROVIDER_KINDS = ("oidc", "ldap")
ROLE_SOURCES = ("rule", "default")


class SsoProvider(TimestampMixin, Base):
    """One identity provider of a tenant: an OpenID Connect issuer or an LDAP directory."""

    __tablename__ = "sso_providers"
    __table_args__ = (
        CheckConstraint("kind IN ('oidc', 'ldap')", name="kind"),
        UniqueConstraint("tenant_id", "name"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    # Shown on the sign-in button ("Sign in with <name>").
    name: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # The kind's plain settings. oidc: issuer, client_id, scopes, groups_claim, email_claim,
    # name_claim. ldap: url, start_tls, ca_certificate, bind_dn, user_base, user_filter,
    # group_base, group_search (member|memberOf), group_filter, group_name_attribute, nested_groups,
    # email_attribute, name_attribute, timeout_seconds.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # oidc: the client secret; ldap: the service account's bind password. Never returned.
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    created_by: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )


class SsoRoleRule(TimestampMixin, Base):
    """ "Members of ``group`` get ``role``": one of the tenant's ordered rules (highest role wins)."""

    __tablename__ = "sso_role_rules"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'developer', 'viewer')", name="role"),
        CheckConstraint("position >= 0", name="position"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    # A group name as the provider reports it (an OIDC claim value, an LDAP group's cn or DN).
    group: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    # NULL: the rule applies to every provider of the tenant; else to that one only.
    provider_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("sso_providers.id", ondelete="CASCADE"), index=True
    )


class SsoIdentity(TimestampMixin, Base):
    """A person as one provider knows them, linked to the member it signs in."""

    __tablename__ = "sso_identities"
    __table_args__ = (
        UniqueConstraint("provider_id", "subject"),
        CheckConstraint("role_source IS NULL OR role_source IN ('rule', 'default')", name="source"),
    )

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    provider_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("sso_providers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    # OIDC: the ``sub`` claim; LDAP: the user's entry DN (lower-cased).
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    profile_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("profiles.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    # What the last log-in saw and decided: the groups, and which rule (or the default) gave
    # the role; the API and the members page show it.
    groups: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    role_rule_id: Mapped[UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("sso_role_rules.id", ondelete="SET NULL"), index=True
    )
    role_source: Mapped[str | None] = mapped_column(Text)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SsoLoginState(Base):
    """An OpenID Connect sign-in under way: single use, short-lived, bound to one browser."""

    __tablename__ = "sso_login_states"

    id: Mapped[UUID] = uuid_pk()
    tenant_id: Mapped[UUID] = tenant_fk()
    provider_id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("sso_providers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    # SHA-256 of the ``state`` parameter; and of the browser-binding cookie's value.
    state_hash: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    browser_hash: Mapped[str] = mapped_column(Text, nullable=False)
    nonce: Mapped[str] = mapped_column(Text, nullable=False)
    # The PKCE code verifier (a secret until the code is exchanged).
    code_verifier: Mapped[str] = mapped_column(EncryptedText, nullable=False)
    # Where to go after signing in (a local path).
    next_path: Mapped[str] = mapped_column(Text, nullable=False, server_default="/")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
