"""Request and response bodies of the accounts API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

Role = Literal["admin", "developer", "viewer"]
Password = Field(min_length=8, max_length=256)


class StrictModel(BaseModel):
    """Rejects unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class SignupRequest(StrictModel):
    email: EmailStr = Field(max_length=320)
    password: str = Password
    full_name: str | None = Field(default=None, max_length=200)
    tenant_name: str = Field(min_length=1, max_length=200)


class LoginRequest(StrictModel):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)


class MeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str
    full_name: str | None
    avatar_url: str | None
    role: Role
    tenant_id: UUID
    tenant_name: str | None


class MeUpdate(StrictModel):
    full_name: str | None = Field(default=None, max_length=200)
    avatar_url: str | None = Field(default=None, max_length=2000)
    current_password: str | None = Field(default=None, max_length=256)
    new_password: str | None = Password


class SessionRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: MeRead


class ApiTokenCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str | None
    kind: Literal["session", "personal"]
    token_prefix: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="The token itself; shown only in this response.")


class MemberCreate(StrictModel):
    email: EmailStr = Field(max_length=320)
    password: str = Password
    full_name: str | None = Field(default=None, max_length=200)
    role: Role = "developer"


class MemberUpdate(StrictModel):
    role: Role


class MemberRead(BaseModel):
    id: UUID
    email: str
    full_name: str | None
    role: Role
    created_at: datetime
    # 0014: a deactivated member (reason "admin"), or one whose SSO groups map to no role
    # ("sso_no_role"); either cannot sign in and holds no valid token.
    is_disabled: bool = False
    disabled_reason: str | None = None


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str | None
    domain: str | None
    created_at: datetime


class TenantUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    domain: str | None = Field(default=None, max_length=253)


SignupMode = Literal["open", "invite", "closed"]
InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]


class SignupModeRead(BaseModel):
    signup: SignupMode


class InvitationCreate(StrictModel):
    email: EmailStr = Field(max_length=320)
    role: Role = "developer"


class InvitationRead(BaseModel):
    id: UUID
    email: str
    role: Role
    status: InvitationStatus
    invited_by: UUID | None
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class InvitationCreated(InvitationRead):
    link: str = Field(description="The invitation link; shown only in this response.")


class InvitationPreview(BaseModel):
    """What the holder of an invitation link sees before accepting it."""

    email: str
    role: Role
    tenant_name: str | None
    expires_at: datetime


class AcceptInvitationRequest(StrictModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Password
    full_name: str | None = Field(default=None, max_length=200)


class TokensRevoked(BaseModel):
    revoked: int = Field(description="How many tokens (log-in sessions included) were revoked.")
