"""Accounts services: database work on users, sessions, tokens, members and the tenant.

Each function takes a session and never waits on anything slow (no network, no password
hashing): the flows in :mod:`shipyard.accounts.flows` hash and verify outside any transaction and
call these before and after. The user actions here (token create and revoke, log-out, member role
and removal, tenant update) write their own audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts import throttle
from shipyard.accounts.audit import audit
from shipyard.accounts.invitations import list_invitations, usable_invitation
from shipyard.accounts.models import ApiToken, AuditEvent, Profile, Tenant, User
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal, RequestContext
from shipyard.accounts.schemas import (
    ApiTokenCreate,
    InvitationRead,
    MemberCreate,
    MemberRead,
    MeRead,
    MeUpdate,
    SignupMode,
    SignupRequest,
    TenantUpdate,
)
from shipyard.accounts.tokens import display_prefix, hash_token, new_token
from shipyard.config import Settings
from shipyard.db import Database, Scope, set_scope, tenant_clause
from shipyard.errors import Conflict, NotFound, PermissionDenied, Unauthorized


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: ApiToken


@dataclass(frozen=True)
class OpenedSession:
    """A new log-in session: its bearer token (shown once) and who it belongs to."""

    token: str
    expires_at: datetime
    me: MeRead


@dataclass(frozen=True)
class LoginCandidate:
    """What log-in needs of a user to check a password outside the transaction that read it."""

    user_id: UUID
    password_hash: str
    is_disabled: bool


# --- sign-up, log-in, log-out ----------------------------------------------------------------


async def email_taken(*, session: AsyncSession, email: str) -> bool:
    """Whether ``email`` has an account; run in a system session (e-mails are unique globally)."""
    found = await session.scalar(select(User.id).where(User.email == email))
    return found is not None


async def tenant_of_email(*, session: AsyncSession, email: str) -> UUID | None:
    """The tenant of the account with ``email``, if any (system session)."""
    tenant_id: UUID | None = await session.scalar(
        select(Profile.tenant_id).join(User, User.id == Profile.id).where(User.email == email)
    )
    if tenant_id is None and await email_taken(session=session, email=email):
        # A user without a profile (half-created by hand) still owns the address.
        return uuid4()
    return tenant_id


async def _issue_token(
    session: AsyncSession,
    *,
    profile: Profile,
    kind: str,
    name: str | None,
    expires_at: datetime | None,
) -> IssuedToken:
    token = new_token()
    record = ApiToken(
        tenant_id=profile.tenant_id,
        profile_id=profile.id,
        kind=kind,
        name=name,
        token_hash=hash_token(token),
        token_prefix=display_prefix(token),
        expires_at=expires_at,
    )
    session.add(record)
    await session.flush()
    await session.refresh(record)
    return IssuedToken(token=token, record=record)


async def _open_session(
    session: AsyncSession, *, profile: Profile, settings: Settings
) -> IssuedToken:
    return await _issue_token(
        session,
        profile=profile,
        kind="session",
        name="log-in",
        expires_at=utcnow() + timedelta(hours=settings.session_token_ttl_hours),
    )


def _as_actor(profile: Profile, *, email: str, token_id: UUID, context: RequestContext) -> Actor:
    """The actor of sign-up and log-in: the user who just proved who they are."""
    principal = Principal(
        user_id=profile.id,
        tenant_id=profile.tenant_id,
        role=profile.role,
        email=email,
        token_id=token_id,
    )
    return Actor(principal=principal, context=context)


async def _opened(session: AsyncSession, *, issued: IssuedToken, actor: Actor) -> OpenedSession:
    assert issued.record.expires_at is not None  # session tokens always expire
    return OpenedSession(
        token=issued.token,
        expires_at=issued.record.expires_at,
        me=await get_me(session=session, principal=actor.principal),
    )


async def _insert_user(
    session: AsyncSession,
    *,
    user_id: UUID,
    tenant_id: UUID,
    email: str,
    password_hash: str,
    full_name: str | None,
    role: str,
    tenant_name: str | None,
) -> Profile:
    """Insert a user and their profile in ``tenant_id`` (a user belongs to one tenant)."""
    session.add(
        User(id=user_id, email=email, encrypted_password=password_hash, full_name=full_name)
    )
    # The user row first: the profile's key refers to it.
    await session.flush()
    profile = Profile(id=user_id, tenant_id=tenant_id, role=role, tenant_name=tenant_name)
    session.add(profile)
    await session.flush()
    return profile


async def create_account(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    user_id: UUID,
    data: SignupRequest,
    email: str,
    password_hash: str,
    context: RequestContext,
    settings: Settings,
) -> OpenedSession:
    """Create the tenant, its first user (an admin) and a log-in session; audit ``signup``.

    ``session`` is scoped to the new tenant and user.
    """
    session.add(Tenant(id=tenant_id, name=data.tenant_name))
    profile = await _insert_user(
        session,
        user_id=user_id,
        tenant_id=tenant_id,
        email=email,
        password_hash=password_hash,
        full_name=data.full_name,
        role="admin",
        tenant_name=data.tenant_name,
    )
    issued = await _open_session(session, profile=profile, settings=settings)
    actor = _as_actor(profile, email=email, token_id=issued.record.id, context=context)
    await audit(
        session, actor=actor, action="signup", resource_type="tenant", resource_id=tenant_id
    )
    return await _opened(session, issued=issued, actor=actor)


async def accept_invitation(
    *,
    session: AsyncSession,
    token: str,
    user_id: UUID,
    password_hash: str,
    full_name: str | None,
    context: RequestContext,
    settings: Settings,
) -> OpenedSession:
    """Join the invitation's tenant with its role, use the invitation up and open a session;
    audit ``invitation.accept``. ``session`` is scoped to the tenant and the new user."""
    invitation = await usable_invitation(session=session, token=token, now=utcnow(), lock=True)
    tenant = await session.get(Tenant, invitation.tenant_id)
    if tenant is not None and tenant.sso_required:
        raise PermissionDenied(
            f"{tenant.name or 'this team'} requires single sign-on: do not set a password, sign "
            f"in through your identity provider at {login_url(tenant=tenant, settings=settings)}",
            code="sso_required",
        )
    profile = await _insert_user(
        session,
        user_id=user_id,
        tenant_id=invitation.tenant_id,
        email=invitation.email,
        password_hash=password_hash,
        full_name=full_name,
        role=invitation.role,
        tenant_name=tenant.name if tenant else None,
    )
    invitation.accepted_at = utcnow()
    invitation.accepted_by = user_id
    issued = await _open_session(session, profile=profile, settings=settings)
    actor = _as_actor(profile, email=invitation.email, token_id=issued.record.id, context=context)
    await audit(
        session,
        actor=actor,
        action="invitation.accept",
        resource_type="invitation",
        resource_id=invitation.id,
        details={"email": invitation.email, "role": invitation.role},
    )
    return await _opened(session, issued=issued, actor=actor)


async def signup_mode(*, session: AsyncSession, settings: Settings) -> SignupMode:
    """``SHIPYARD_SIGNUP``, or when unset: open until the first tenant exists, then invite."""
    if settings.signup is not None:
        return settings.signup
    any_tenant = await session.scalar(select(exists().where(Tenant.id.is_not(None))))
    return "invite" if any_tenant else "open"


async def opens_on_signup(*, session: AsyncSession, settings: Settings) -> bool:
    """A fresh install (no user at all) whose sign-up is open: its first visitor signs up."""
    any_user = await session.scalar(select(exists().where(User.id.is_not(None))))
    return not any_user and await signup_mode(session=session, settings=settings) == "open"


async def admit_signup(*, session: AsyncSession, ip_address: str, settings: Settings) -> SignupMode:
    """Refuse a sign-up unless it is open, then count it against the address (system session)."""
    mode = await signup_mode(session=session, settings=settings)
    if mode == "invite":
        raise PermissionDenied(
            "sign-up is by invitation on this server: ask an admin of your team for a link",
            code="signup_invite_only",
        )
    if mode == "closed":
        raise PermissionDenied(
            "sign-up is closed on this server: an operator creates accounts (shipyard user create)",
            code="signup_closed",
        )
    await throttle.take_signup_attempt(
        session=session, ip_address=ip_address, settings=settings, now=utcnow()
    )
    return mode


def decoy_session(*, data: SignupRequest, email: str, settings: Settings) -> OpenedSession:
    """What sign-up answers for an e-mail that already has an account: the same shape, nothing
    created, and a token that was never stored (so it opens nothing)."""
    return OpenedSession(
        token=new_token(),
        expires_at=utcnow() + timedelta(hours=settings.session_token_ttl_hours),
        me=MeRead(
            id=uuid4(),
            email=email,
            full_name=data.full_name,
            avatar_url=None,
            role="admin",
            tenant_id=uuid4(),
            tenant_name=data.tenant_name,
        ),
    )


async def find_login(*, session: AsyncSession, email: str) -> LoginCandidate | None:
    """The user that log-in would check ``email``'s password against (system session)."""
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        return None
    return LoginCandidate(
        user_id=user.id, password_hash=user.encrypted_password, is_disabled=user.is_disabled
    )


async def start_session(
    *,
    session: AsyncSession,
    user_id: UUID,
    email: str,
    context: RequestContext,
    settings: Settings,
) -> OpenedSession:
    """After a correct password: forget the failures, open a session, audit ``login``.

    Runs in a system session (the user's tenant is not known until the profile is read). Also
    deletes the user's expired log-in sessions, so log-ins do not pile rows up.
    """
    await throttle.forget_login_failures(session=session, email=email)
    profile = await session.get(Profile, user_id)
    if profile is None:
        raise Unauthorized("this account belongs to no tenant", code="no_tenant")
    await refuse_password_when_sso_required(session=session, profile=profile, settings=settings)
    return await open_login_session(
        session=session, profile=profile, email=email, context=context, settings=settings
    )


async def open_login_session(
    *,
    session: AsyncSession,
    profile: Profile,
    email: str,
    context: RequestContext,
    settings: Settings,
    action: str = "login",
    details: dict[str, Any] | None = None,
) -> OpenedSession:
    """Open a log-in session for a member who proved who they are (a password, an identity
    provider) and audit ``action``; also deletes their expired sessions (system session)."""
    await session.execute(
        delete(ApiToken).where(
            ApiToken.profile_id == profile.id,
            ApiToken.kind == "session",
            ApiToken.expires_at <= utcnow(),
        )
    )
    await session.execute(
        update(User).where(User.id == profile.id).values(last_sign_in_at=utcnow())
    )
    issued = await _open_session(session, profile=profile, settings=settings)
    actor = _as_actor(profile, email=email, token_id=issued.record.id, context=context)
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="api_token",
        resource_id=issued.record.id,
        details=details,
    )
    return await _opened(session, issued=issued, actor=actor)


def login_url(*, tenant: Tenant, settings: Settings) -> str:
    """The tenant's own log-in page (its slug's, else the one by tenant id)."""
    base = settings.base_url.rstrip("/")
    if tenant.login_slug:
        return f"{base}/login/t/{tenant.login_slug}"
    return f"{base}/login/sso/{tenant.id}"


async def refuse_password_when_sso_required(
    *, session: AsyncSession, profile: Profile, settings: Settings
) -> None:
    """Refuse a password (403 ``sso_required``) to a member of a tenant that requires single
    sign-on, unless they are its break-glass admin."""
    tenant = await session.get(Tenant, profile.tenant_id)
    if tenant is None or not tenant.sso_required:
        return
    if tenant.sso_break_glass_profile_id == profile.id:
        return
    where = login_url(tenant=tenant, settings=settings)
    raise PermissionDenied(
        f"{tenant.name or 'your team'} requires single sign-on: sign in through your identity "
        f"provider at {where}",
        code="sso_required",
        details={"login_url": where},
    )


async def disable_account(*, session: AsyncSession, user_id: UUID, reason: str) -> int:
    """Disable a user (``reason``: admin | sso_no_role) and revoke every token they hold,
    log-in sessions and personal tokens alike. Returns how many tokens were still valid."""
    await session.execute(
        update(User).where(User.id == user_id).values(is_disabled=True, disabled_reason=reason)
    )
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.profile_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def enable_account(*, session: AsyncSession, user_id: UUID) -> None:
    """Enable a disabled user again (their revoked tokens stay revoked)."""
    await session.execute(
        update(User).where(User.id == user_id).values(is_disabled=False, disabled_reason=None)
    )


async def logout(*, session: AsyncSession, actor: Actor) -> None:
    """Revoke the token the actor's request was made with; audit ``logout``."""
    token_id = actor.principal.token_id
    if token_id is None:
        return
    await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await audit(
        session, actor=actor, action="logout", resource_type="api_token", resource_id=token_id
    )


# The few columns a bearer token resolves to, in one statement run in autocommit on the
# database's lookup connections (this runs on every API request: no session, no transaction).
_AUTHENTICATE_SQL = """
SELECT t.id, t.revoked_at, t.expires_at, t.last_used_at,
       p.id AS profile_id, p.tenant_id, p.role, u.email, u.is_disabled
FROM api_tokens t
JOIN profiles p ON p.id = t.profile_id
JOIN users u ON u.id = p.id
WHERE t.token_hash = %(token_hash)s
"""
_TOKEN_USED_SQL = "UPDATE api_tokens SET last_used_at = %(now)s WHERE id = %(id)s RETURNING id"
# How often a token's last_used_at is written (so a busy client does not write on every request).
LAST_USED_EVERY = timedelta(minutes=1)


async def authenticate(*, db: Database, token: str) -> Principal:
    """Resolve a bearer token to its principal, or raise :class:`Unauthorized`."""
    rows = await db.lookups.fetch(
        _AUTHENTICATE_SQL, {"token_hash": hash_token(token)}, idempotent=True
    )
    if not rows:
        raise Unauthorized("the token is not valid", code="invalid_token")
    token_id, revoked_at, expires_at, last_used_at, profile_id, tenant_id, role, email, disabled = (
        rows[0]
    )
    now = utcnow()
    if revoked_at is not None:
        raise Unauthorized("the token has been revoked", code="token_revoked")
    if expires_at is not None and expires_at <= now:
        raise Unauthorized("the token has expired; log in again", code="token_expired")
    if disabled:
        raise Unauthorized("the account is disabled", code="account_disabled")
    if last_used_at is None or now - last_used_at > LAST_USED_EVERY:
        # Throttled so a busy client does not write on every request.
        await db.lookups.fetch(_TOKEN_USED_SQL, {"now": now, "id": token_id}, idempotent=True)
    return Principal(
        user_id=profile_id, tenant_id=tenant_id, role=role, email=email, token_id=token_id
    )


async def principal_is_current(*, session: AsyncSession, principal: Principal) -> bool:
    """Whether ``principal`` would still authenticate: its token is neither revoked nor expired
    (nor deleted with its member) and its account is enabled. Long requests (the live log)
    re-check this, so log-out, revocation and removal reach a stream already open."""
    now = utcnow()
    if principal.token_id is None:
        query = select(User.is_disabled).where(User.id == principal.user_id)
    else:
        query = (
            select(User.is_disabled)
            .join(ApiToken, ApiToken.profile_id == User.id)
            .where(
                ApiToken.id == principal.token_id,
                ApiToken.profile_id == principal.user_id,
                ApiToken.revoked_at.is_(None),
                (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
            )
        )
    disabled = await session.scalar(query)
    return disabled is False


async def purge_expired_sessions(*, session: AsyncSession, now: datetime) -> int:
    """Delete log-in sessions past their expiry (system session); personal tokens stay listed."""
    result = await session.execute(
        delete(ApiToken).where(ApiToken.kind == "session", ApiToken.expires_at <= now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def use_principal(session: AsyncSession, principal: Principal) -> None:
    """Scope ``session`` to the principal's tenant for its next transaction."""
    set_scope(session, Scope(tenant_id=principal.tenant_id, user_id=principal.user_id))


# --- personal API tokens ---------------------------------------------------------------------


async def create_token(*, session: AsyncSession, actor: Actor, data: ApiTokenCreate) -> IssuedToken:
    """Create a personal API token for the actor; audit ``token.create``."""
    actor.require(Permission.MANAGE_OWN_TOKENS)
    profile = await get_profile(session=session, profile_id=actor.user_id)
    expires_at = utcnow() + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    issued = await _issue_token(
        session, profile=profile, kind="personal", name=data.name, expires_at=expires_at
    )
    await audit(
        session,
        actor=actor,
        action="token.create",
        resource_type="api_token",
        resource_id=issued.record.id,
        details={"name": data.name},
    )
    return issued


async def revoke_token(*, session: AsyncSession, actor: Actor, token_id: UUID) -> ApiToken:
    """Revoke one of the actor's own tokens; audit ``token.revoke``."""
    record = await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.profile_id == actor.user_id)
    )
    if record is None:
        raise NotFound("token not found")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await session.flush()
    await audit(
        session, actor=actor, action="token.revoke", resource_type="api_token", resource_id=token_id
    )
    return record


async def list_tokens(*, session: AsyncSession, principal: Principal) -> list[ApiToken]:
    result = await session.scalars(
        select(ApiToken)
        .where(ApiToken.profile_id == principal.user_id, ApiToken.kind == "personal")
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(result.all())


async def list_member_tokens(
    *, session: AsyncSession, actor: Actor, member_id: UUID
) -> list[ApiToken]:
    """A member's personal API tokens (admins only), for revoking them."""
    actor.require(Permission.MANAGE_MEMBERS)
    await _member_profile(session, actor=actor, member_id=member_id)
    result = await session.scalars(
        select(ApiToken)
        .where(
            ApiToken.profile_id == member_id,
            ApiToken.tenant_id == actor.tenant_id,
            ApiToken.kind == "personal",
        )
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(result.all())


@dataclass(frozen=True)
class MemberTokens:
    member: MemberRead
    tokens: list[ApiToken]


async def member_tokens_page(
    *, session: AsyncSession, actor: Actor, member_id: UUID
) -> MemberTokens:
    """A member and their personal tokens, for the admin's revoke page."""
    tokens = await list_member_tokens(session=session, actor=actor, member_id=member_id)
    return MemberTokens(
        member=await get_member(session=session, member_id=member_id), tokens=tokens
    )


async def revoke_member_token(
    *, session: AsyncSession, actor: Actor, member_id: UUID, token_id: UUID
) -> ApiToken:
    """Revoke one of a member's tokens (admins only); audit ``member.token.revoke``."""
    actor.require(Permission.MANAGE_MEMBERS)
    await _member_profile(session, actor=actor, member_id=member_id)
    record = await session.scalar(
        select(ApiToken).where(
            ApiToken.id == token_id,
            ApiToken.profile_id == member_id,
            ApiToken.tenant_id == actor.tenant_id,
        )
    )
    if record is None:
        raise NotFound("token not found")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await session.flush()
    await audit(
        session,
        actor=actor,
        action="member.token.revoke",
        resource_type="api_token",
        resource_id=token_id,
        details={"member_id": str(member_id)},
    )
    return record


async def revoke_member_tokens(*, session: AsyncSession, actor: Actor, member_id: UUID) -> int:
    """Revoke every token of a member, log-in sessions included (sign them out everywhere);
    audit ``member.tokens.revoke``. Returns how many were still valid."""
    actor.require(Permission.MANAGE_MEMBERS)
    await _member_profile(session, actor=actor, member_id=member_id)
    result = await session.execute(
        update(ApiToken)
        .where(
            ApiToken.profile_id == member_id,
            ApiToken.tenant_id == actor.tenant_id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    revoked = int(getattr(result, "rowcount", 0) or 0)
    await audit(
        session,
        actor=actor,
        action="member.tokens.revoke",
        resource_type="profile",
        resource_id=member_id,
        details={"revoked": revoked},
    )
    return revoked


# --- the user themselves ---------------------------------------------------------------------


async def get_profile(*, session: AsyncSession, profile_id: UUID) -> Profile:
    profile = await session.scalar(
        select(Profile).where(Profile.id == profile_id, tenant_clause(session, Profile.tenant_id))
    )
    if profile is None:
        raise NotFound("member not found")
    return profile


async def get_me(*, session: AsyncSession, principal: Principal) -> MeRead:
    row = (
        await session.execute(
            select(Profile, User)
            .join(User, User.id == Profile.id)
            .where(Profile.id == principal.user_id)
        )
    ).one()
    profile, user = row
    return MeRead(
        id=profile.id,
        email=user.email,
        full_name=user.full_name,
        avatar_url=profile.avatar_url,
        role=profile.role,
        tenant_id=profile.tenant_id,
        tenant_name=profile.tenant_name,
    )


async def password_hash_of(*, session: AsyncSession, user_id: UUID) -> str:
    """The stored hash, for a flow to check the current password outside the transaction."""
    password_hash = await session.scalar(select(User.encrypted_password).where(User.id == user_id))
    if password_hash is None:
        raise NotFound("user not found")
    return password_hash


async def _revoke_other_sessions(session: AsyncSession, *, actor: Actor) -> int:
    """After a password change: end every log-in session but the one making the change.

    Personal API tokens stay: they run automation, are listed on the tokens page and are
    revoked there (or by an admin) when they may have leaked too.
    """
    query = update(ApiToken).where(
        ApiToken.profile_id == actor.user_id,
        ApiToken.kind == "session",
        ApiToken.revoked_at.is_(None),
    )
    if actor.principal.token_id is not None:
        query = query.where(ApiToken.id != actor.principal.token_id)
    result = await session.execute(query.values(revoked_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


async def save_me(
    *, session: AsyncSession, actor: Actor, data: MeUpdate, password_hash: str | None
) -> MeRead:
    """Write the actor's name and avatar (the fields ``data`` sets) and a new password hash.

    The flow checked the current password and hashed the new one; a new password ends the
    actor's other log-in sessions. Audit ``me.update``.
    """
    user = await session.get(User, actor.user_id)
    if user is None:
        raise NotFound("user not found")
    profile = await get_profile(session=session, profile_id=actor.user_id)
    fields = sorted(data.model_fields_set & {"full_name", "avatar_url"})
    if "full_name" in fields:
        user.full_name = data.full_name
    if "avatar_url" in fields:
        profile.avatar_url = data.avatar_url
    details: dict[str, Any] = {}
    if password_hash is not None:
        user.encrypted_password = password_hash
        fields.append("password")
        details["sessions_revoked"] = await _revoke_other_sessions(session, actor=actor)
    await session.flush()
    if fields:
        # Names the fields, never their values: a password hash has no place in the log.
        await audit(
            session,
            actor=actor,
            action="me.update",
            resource_type="profile",
            resource_id=actor.user_id,
            details={"fields": fields, **details},
        )
    return await get_me(session=session, principal=actor.principal)


# --- members ---------------------------------------------------------------------------------


def _member_read(profile: Profile, user: User) -> MemberRead:
    return MemberRead(
        id=profile.id,
        email=user.email,
        full_name=user.full_name,
        role=profile.role,
        created_at=profile.created_at,
        is_disabled=user.is_disabled,
        disabled_reason=user.disabled_reason if user.is_disabled else None,
    )


async def list_members(*, session: AsyncSession) -> list[MemberRead]:
    rows = await session.execute(
        select(Profile, User)
        .join(User, User.id == Profile.id)
        .where(tenant_clause(session, Profile.tenant_id))
        .order_by(Profile.created_at, Profile.id)
    )
    return [_member_read(profile, user) for profile, user in rows.all()]


async def read_members(*, db: Database, principal: Principal) -> MembersOverview:
    """:func:`members_overview` in a short transaction of its own, for callers holding no
    session."""
    async with db.session(tenant_id=principal.tenant_id, user_id=principal.user_id) as session:
        return await members_overview(session=session, principal=principal)


@dataclass(frozen=True)
class MembersOverview:
    """The members page: the tenant's members and, for admins, its invitations."""

    members: list[MemberRead]
    invitations: list[InvitationRead]


async def members_overview(*, session: AsyncSession, principal: Principal) -> MembersOverview:
    members = await list_members(session=session)
    pending: list[InvitationRead] = []
    if principal.can(Permission.MANAGE_MEMBERS):
        pending = await list_invitations(
            session=session, actor=Actor(principal=principal), now=utcnow()
        )
    return MembersOverview(members=members, invitations=pending)


async def get_member(*, session: AsyncSession, member_id: UUID) -> MemberRead:
    row = (
        await session.execute(
            select(Profile, User)
            .join(User, User.id == Profile.id)
            .where(Profile.id == member_id, tenant_clause(session, Profile.tenant_id))
        )
    ).one_or_none()
    if row is None:
        raise NotFound("member not found")
    return _member_read(*row)


def decoy_member(*, data: MemberCreate, email: str) -> MemberRead:
    """What add-member answers for an e-mail held by another tenant: a new member's shape,
    nothing created (no second tenant may learn which addresses the first one holds)."""
    return MemberRead(
        id=uuid4(), email=email, full_name=data.full_name, role=data.role, created_at=utcnow()
    )


async def create_member(
    *,
    session: AsyncSession,
    actor: Actor,
    user_id: UUID,
    email: str,
    password_hash: str,
    full_name: str | None,
    role: str,
) -> MemberRead:
    """Insert a user with a profile in the actor's tenant; audit ``member.add``.

    ``session`` is scoped to the actor's tenant and the new user (so the new row is readable).
    """
    actor.require(Permission.MANAGE_MEMBERS)
    tenant = await session.get(Tenant, actor.tenant_id)
    await _insert_user(
        session,
        user_id=user_id,
        tenant_id=actor.tenant_id,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=role,
        tenant_name=tenant.name if tenant else None,
    )
    await audit(
        session,
        actor=actor,
        action="member.add",
        resource_type="profile",
        resource_id=user_id,
        details={"email": email, "role": role},
    )
    return await get_member(session=session, member_id=user_id)


async def _admin_count(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Profile)
            .where(Profile.role == "admin", tenant_clause(session, Profile.tenant_id))
        )
        or 0
    )


async def _member_profile(session: AsyncSession, *, actor: Actor, member_id: UUID) -> Profile:
    profile = await session.scalar(
        select(Profile).where(Profile.id == member_id, Profile.tenant_id == actor.tenant_id)
    )
    if profile is None:
        raise NotFound("member not found")
    return profile


async def change_member_role(
    *, session: AsyncSession, actor: Actor, member_id: UUID, role: str
) -> MemberRead:
    """Give a member another role (a tenant keeps at least one admin); audit ``member.role``."""
    actor.require(Permission.MANAGE_MEMBERS)
    profile = await _member_profile(session, actor=actor, member_id=member_id)
    if profile.role == "admin" and role != "admin" and await _admin_count(session) <= 1:
        raise Conflict("a tenant needs at least one admin", code="last_admin")
    if role != "admin":
        await _keep_break_glass(session, tenant_id=actor.tenant_id, member_id=member_id)
    profile.role = role
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="member.role",
        resource_type="profile",
        resource_id=member_id,
        details={"role": role},
    )
    return await get_member(session=session, member_id=member_id)


async def _enabled_admin_count(session: AsyncSession, *, tenant_id: UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Profile)
            .join(User, User.id == Profile.id)
            .where(
                Profile.role == "admin",
                Profile.tenant_id == tenant_id,
                User.is_disabled.is_(False),
            )
        )
        or 0
    )


async def _keep_break_glass(session: AsyncSession, *, tenant_id: UUID, member_id: UUID) -> None:
    """Refuse (409) to demote, deactivate or remove the break-glass admin of a tenant that
    requires single sign-on: it is the way back in when the identity provider fails."""
    tenant = await session.get(Tenant, tenant_id)
    if (
        tenant is not None
        and tenant.sso_required
        and tenant.sso_break_glass_profile_id == member_id
    ):
        raise Conflict(
            "this member is the break-glass admin of a team that requires single sign-on: name "
            "another break-glass admin (or stop requiring SSO) first",
            code="break_glass",
        )


async def deactivate_member(*, session: AsyncSession, actor: Actor, member_id: UUID) -> MemberRead:
    """Disable a member (reason ``admin``) and revoke every token they hold, log-in sessions and
    personal tokens; the last enabled admin stays. Audit ``member.deactivate``."""
    actor.require(Permission.MANAGE_MEMBERS)
    profile = await _member_profile(session, actor=actor, member_id=member_id)
    user = await session.get(User, member_id)
    if user is None:
        raise NotFound("member not found")
    if (
        profile.role == "admin"
        and not user.is_disabled
        and await _enabled_admin_count(session, tenant_id=actor.tenant_id) <= 1
    ):
        raise Conflict("a tenant needs at least one active admin", code="last_admin")
    await _keep_break_glass(session, tenant_id=actor.tenant_id, member_id=member_id)
    revoked = await disable_account(session=session, user_id=member_id, reason="admin")
    await audit(
        session,
        actor=actor,
        action="member.deactivate",
        resource_type="profile",
        resource_id=member_id,
        details={"email": user.email, "tokens_revoked": revoked},
    )
    await session.refresh(user)
    return await get_member(session=session, member_id=member_id)


async def reactivate_member(*, session: AsyncSession, actor: Actor, member_id: UUID) -> MemberRead:
    """Enable a deactivated member again (their revoked tokens stay revoked: they sign in
    anew); audit ``member.reactivate``."""
    actor.require(Permission.MANAGE_MEMBERS)
    await _member_profile(session, actor=actor, member_id=member_id)
    user = await session.get(User, member_id)
    if user is None:
        raise NotFound("member not found")
    before = user.disabled_reason
    await enable_account(session=session, user_id=member_id)
    await audit(
        session,
        actor=actor,
        action="member.reactivate",
        resource_type="profile",
        resource_id=member_id,
        details={"email": user.email, "was": before},
    )
    await session.refresh(user)
    return await get_member(session=session, member_id=member_id)


async def remove_member(*, session: AsyncSession, actor: Actor, member_id: UUID) -> None:
    """Delete a member's user (a tenant keeps at least one admin); audit ``member.remove``."""
    actor.require(Permission.MANAGE_MEMBERS)
    profile = await _member_profile(session, actor=actor, member_id=member_id)
    if profile.role == "admin" and await _admin_count(session) <= 1:
        raise Conflict("a tenant needs at least one admin", code="last_admin")
    await _keep_break_glass(session, tenant_id=actor.tenant_id, member_id=member_id)
    # Deleting the user removes the profile and its tokens by cascade.
    await session.execute(delete(User).where(User.id == member_id))
    await audit(
        session, actor=actor, action="member.remove", resource_type="profile", resource_id=member_id
    )


# --- the tenant ------------------------------------------------------------------------------


async def get_tenant(*, session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def update_tenant(*, session: AsyncSession, actor: Actor, data: TenantUpdate) -> Tenant:
    """Rename the tenant or set its domain; audit ``tenant.update``."""
    actor.require(Permission.MANAGE_MEMBERS)
    tenant = await get_tenant(session=session, principal=actor.principal)
    fields: list[str] = []
    if "name" in data.model_fields_set and data.name is not None:
        tenant.name = data.name
        await session.execute(
            update(Profile).where(Profile.tenant_id == tenant.id).values(tenant_name=data.name)
        )
        fields.append("name")
    if "domain" in data.model_fields_set:
        tenant.domain = data.domain
        fields.append("domain")
    await session.flush()
    if fields:
        await audit(
            session,
            actor=actor,
            action="tenant.update",
            resource_type="tenant",
            resource_id=tenant.id,
            details={"fields": fields},
        )
    return tenant


async def create_user(
    *,
    session: AsyncSession,
    email: str,
    password_hash: str,
    full_name: str | None,
    tenant_name: str | None,
    tenant_id: UUID | None,
    role: str,
) -> Profile:
    """Create a user in a new tenant (as its admin) or an existing one (system session, CLI)."""
    if await email_taken(session=session, email=email):
        raise Conflict(f"an account with e-mail {email} already exists", code="email_taken")
    existing = await session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant_id is not None and existing is None:
        raise NotFound(f"tenant {tenant_id} not found")
    name = (existing.name if existing else None) or tenant_name or email
    tenant = existing
    if tenant is None:
        tenant = Tenant(id=uuid4(), name=name)
        session.add(tenant)
        role = "admin"
    return await _insert_user(
        session,
        user_id=uuid4(),
        tenant_id=tenant.id,
        email=email,
        password_hash=password_hash,
        full_name=full_name,
        role=role,
        tenant_name=name,
    )


# --- background entries ----------------------------------------------------------------------


async def record_audit(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    actor_id: UUID | None,
    action: str,
    resource_type: str,
    resource_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> None:
    """Append an entry made by the system (no request) to the tenant's audit log.

    User actions use :func:`shipyard.accounts.audit.audit` with the request's actor instead.
    """
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor_profile_id=actor_id,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            details=details or {},
            ip_address=ip_address,
        )
    )
