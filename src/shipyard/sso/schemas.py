"""Request and response bodies of the single sign-on API: providers (per kind), role rules, the
tenant's log-in policy and the explanation of a member's role."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["oidc", "ldap"]
Role = Literal["admin", "developer", "viewer"]
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_RULES = 500


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- provider settings, per kind ---------------------------------------------------------------


class OidcSettings(StrictModel):
    """``config`` of an OpenID Connect provider."""

    issuer: str = Field(
        min_length=1,
        max_length=2000,
        description="The issuer URL (https; http only on loopback); discovery is read from "
        "{issuer}/.well-known/openid-configuration.",
    )
    client_id: str = Field(min_length=1, max_length=500)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"], max_length=20)
    groups_claim: str = Field(
        default="groups",
        min_length=1,
        max_length=200,
        description="The claim holding the groups; a dotted path reads nested claims "
        "(realm_access.roles).",
    )
    email_claim: str = Field(default="email", min_length=1, max_length=200)
    name_claim: str = Field(default="name", min_length=1, max_length=200)
    graph_url: str = Field(
        default="https://graph.microsoft.com",
        min_length=1,
        max_length=2000,
        description="Microsoft Graph, where a person's groups are read when Entra ID has more "
        "than fit in its token (group overage); another cloud's Graph where Entra ID runs there.",
    )

    @field_validator("issuer", "graph_url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise ValueError("is not a URL") from exc
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ValueError("must be https (plain http only on a loopback address)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a plain URL, without query, fragment or credentials")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        scopes = [scope.strip() for scope in value if scope.strip()]
        if any(not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", scope) for scope in scopes):
            raise ValueError("a scope is one word of printable characters")
        if "openid" not in scopes:
            raise ValueError("must include openid")
        return list(dict.fromkeys(scopes))


class LdapSettings(StrictModel):
    """``config`` of an LDAP directory."""

    url: str = Field(
        min_length=1, max_length=2000, description="ldap://host:389 or ldaps://host:636"
    )
    start_tls: bool = False
    ca_certificate: str | None = Field(
        default=None, max_length=20000, description="PEM; none: the system's CA store."
    )
    bind_dn: str = Field(min_length=1, max_length=1000, description="The service account's DN.")
    user_base: str = Field(min_length=1, max_length=1000)
    user_filter: str = Field(
        default="(&(objectClass=inetOrgPerson)(uid={username}))",
        min_length=1,
        max_length=2000,
        description="{username} is replaced by the escaped user name.",
    )
    group_search: Literal["member", "memberOf"] = "member"
    group_base: str | None = Field(default=None, max_length=1000)
    group_filter: str = Field(
        default="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
        min_length=1,
        max_length=2000,
    )
    group_name_attribute: str = Field(default="cn", min_length=1, max_length=200)
    nested_groups: bool = Field(
        default=False,
        description="Also the groups the user's groups are members of, up to 10 levels up.",
    )
    directory_check: bool = Field(
        default=True,
        description="Hourly, look every linked member up in the directory again: a member whose "
        "entry is gone, no longer matches the user filter or whose groups map to no role is "
        "disabled (tokens revoked); a changed role is applied.",
    )
    email_attribute: str = Field(default="mail", min_length=1, max_length=200)
    name_attribute: str = Field(default="cn", min_length=1, max_length=200)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError("is not a URL (ldap://host:389 or ldaps://host:636)") from exc
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError("must be ldap://host[:port] or ldaps://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("must be ldap://host[:port] or ldaps://host[:port], nothing more")
        return value

    @field_validator("user_filter")
    @classmethod
    def _user_filter(cls, value: str) -> str:
        value = value.strip()
        if "{username}" not in value:
            raise ValueError("must contain {username}")
        if not (value.startswith("(") and value.endswith(")")):
            raise ValueError("must be an LDAP filter in parentheses")
        return value

    @field_validator("ca_certificate")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return value

    @model_validator(mode="after")
    def _tls(self) -> LdapSettings:
        if self.start_tls and self.url.startswith("ldaps:"):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS already")
        return self


SETTINGS_OF_KIND: dict[str, type[StrictModel]] = {"oidc": OidcSettings, "ldap": LdapSettings}


# --- providers ---------------------------------------------------------------------------------


class ProviderCreate(StrictModel):
    kind: Kind
    name: str = Field(min_length=1, max_length=100, description='Shown as "Sign in with <name>".')
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=10000,
        description="oidc: the client secret (none: a public client with PKCE); ldap: the "
        "service account's password. Write-only.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class ProviderUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    enabled: bool | None = None
    config: dict[str, Any] | None = Field(
        default=None, description="The keys sent replace those stored; the rest stay."
    )
    secret: str | None = Field(
        default=None, min_length=1, max_length=10000, description="Sent: replaces the secret."
    )
    clear_secret: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip()
            if not value:
                raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> ProviderUpdate:
        if self.clear_secret and self.secret is not None:
            raise ValueError("send either secret or clear_secret, not both")
        return self


class ProviderRead(BaseModel):
    id: UUID
    kind: Kind
    name: str
    enabled: bool
    config: dict[str, Any]
    has_secret: bool
    login_path: str = Field(description="Where the sign-in starts (OIDC: a link; LDAP: a POST).")
    created_at: datetime
    updated_at: datetime


class ProviderTestResult(BaseModel):
    ok: bool
    message: str


class DirectoryCheckResult(BaseModel):
    """What a directory check of one LDAP provider found and changed."""

    checked: int = Field(description="Linked members looked up in the directory")
    disabled: int = Field(description="Disabled (tokens revoked): gone or left with no role")
    enabled: int = Field(description="Enabled again: their groups give a role again")
    role_changes: int = Field(description="Members whose role followed their groups")


# --- role rules --------------------------------------------------------------------------------


class RuleCreate(StrictModel):
    group: str = Field(min_length=1, max_length=1000, description="A group name or DN.")
    role: Role
    provider_id: UUID | None = Field(default=None, description="None: every provider.")
    position: int | None = Field(
        default=None, ge=0, description="Where to insert it (0: first); none: last."
    )

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value


class RuleUpdate(StrictModel):
    group: str | None = Field(default=None, min_length=1, max_length=1000)
    role: Role | None = None
    provider_id: UUID | None = None

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None:
            value = value.strip()
            if not value:
                raise ValueError("must not be blank")
        return value


class RuleOrder(StrictModel):
    ids: list[UUID] = Field(max_length=MAX_RULES, description="Every rule's id, in the new order.")


class RuleRead(BaseModel):
    id: UUID
    position: int
    group: str
    role: Role
    provider_id: UUID | None


# --- policy ------------------------------------------------------------------------------------


class SsoSettingsRead(BaseModel):
    login_slug: str | None
    login_url: str = Field(description="The team's own log-in page.")
    default_role: Role | None = Field(
        description="The role of a person no rule matches; none: refuse."
    )
    sso_required: bool
    break_glass_member_id: UUID | None
    redirect_uri: str = Field(description="The redirect URL to register at every OIDC provider.")


class SsoSettingsUpdate(StrictModel):
    login_slug: str | None = Field(default=None, max_length=63)
    default_role: Role | None = None
    sso_required: bool | None = None
    break_glass_member_id: UUID | None = None

    @field_validator("login_slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not SLUG.fullmatch(value):
            raise ValueError(
                "lower-case letters, digits and dashes (not first or last), at most 63"
            )
        return value


# --- explanation -------------------------------------------------------------------------------


class RuleRef(BaseModel):
    id: UUID
    position: int
    group: str
    role: Role


class IdentityRead(BaseModel):
    provider_id: UUID
    provider_name: str
    provider_kind: Kind
    subject: str
    groups: list[str]
    last_login_at: datetime | None
    role_source: Literal["rule", "default"] | None
    rule: RuleRef | None = Field(description="The rule that gave the role at the last sign-in.")


class MemberSso(BaseModel):
    member_id: UUID
    email: str
    role: Role
    is_disabled: bool
    disabled_reason: str | None
    identities: list[IdentityRead]
    explanation: str = Field(description="In words: where the member's role comes from.")


class TeamLoginProvider(BaseModel):
    """A provider a team signs in with, as its log-in page shows it."""

    id: UUID
    kind: str = Field(description="oidc or ldap.")
    name: str


class TeamLoginRead(BaseModel):
    """A team's log-in page: what anyone may see before signing in."""

    name: str
    sso_required: bool = Field(description="Whether the team's members must sign in with SSO.")
    providers: list[TeamLoginProvider] = Field(
        description="Enabled providers, oldest first; LDAP ones take POST /auth/ldap."
    )
