"""Sign-up, log-in, tokens, members and the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import ApiToken, AuditEvent, LoginFailure, Profile, Tenant, User
from shipyard.accounts.passwords import burn_verification_time, hash_password, verify_password
from shipyard.accounts.principal import Principal
from shipyard.accounts.schemas import (
    ApiTokenCreate,
    MemberCreate,
    MemberRead,
    MeRead,
    MeUpdate,
    SignupRequest,
    TenantUpdate,
)
from shipyard.accounts.tokens import display_prefix, hash_token, new_token
from shipyard.config import Settings
from shipyard.db import Database, Scope, set_scope
from shipyard.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed

if TYPE_CHECKING:
    from shipyard.runtime import Runtime


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    record: ApiToken


async def _email_taken(session: AsyncSession, email: str) -> bool:
    # Runs in a system transaction: e-mail addresses are unique across tenants.
    found = await session.scalar(select(User.id).where(User.email == email))
    return found is not None


async def signup(
    *, db: Database, data: SignupRequest, settings: Settings
) -> tuple[IssuedToken, Profile]:
    """Create a user, their tenant and an admin profile, and open a session for them."""
    email = normalise_email(data.email)
    async with db.session(system=True) as session:
        if await _email_taken(session, email):
            raise Conflict("an account with this e-mail already exists", code="email_taken")
    tenant_id, user_id = uuid4(), uuid4()
    password_hash = hash_password(data.password)
    try:
        async with db.session(tenant_id=tenant_id, user_id=user_id) as session:
            session.add(Tenant(id=tenant_id, name=data.tenant_name))
            session.add(
                User(
                    id=user_id,
                    email=email,
                    encrypted_password=password_hash,
                    full_name=data.full_name,
                )
            )
            await session.flush()
            profile = Profile(
                id=user_id, tenant_id=tenant_id, role="admin", tenant_name=data.tenant_name
            )
            session.add(profile)
            await session.flush()
            issued = await _issue_token(
                session,
                profile=profile,
                kind="session",
                name="log-in",
                expires_at=utcnow() + timedelta(hours=settings.session_token_ttl_hours),
            )
            await record_audit(
                session,
                tenant_id=tenant_id,
                actor_id=user_id,
                action="signup",
                resource_type="tenant",
                resource_id=tenant_id,
            )
    except IntegrityError as exc:
        raise Conflict("an account with this e-mail already exists", code="email_taken") from exc
    return issued, profile


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


async def _check_login_throttle(
    session: AsyncSession, *, email: str, ip_address: str, settings: Settings
) -> None:
    window_start = utcnow() - timedelta(seconds=settings.login_failure_window_seconds)
    for column, value, limit, what in (
        (LoginFailure.email, email, settings.login_max_failures_per_account, "this account"),
        (
            LoginFailure.ip_address,
            ip_address,
            settings.login_max_failures_per_address,
            "your address",
        ),
    ):
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(LoginFailure.created_at)).where(
                    column == value, LoginFailure.created_at > window_start
                )
            )
        ).one()
        if count >= limit:
            retry_after = max(
                1,
                int(
                    (
                        oldest + timedelta(seconds=settings.login_failure_window_seconds) - utcnow()
                    ).total_seconds()
                )
                + 1,
            )
            raise RateLimited(
                f"too many failed log-ins for {what}; try again in {retry_after} seconds",
                retry_after=retry_after,
            )


async def login(
    *, db: Database, email: str, password: str, ip_address: str, settings: Settings
) -> tuple[IssuedToken, Profile]:
    """Check the credentials (with brute-force throttling) and open a session."""
    email = normalise_email(email)
    async with db.session(system=True) as session:
        await _check_login_throttle(session, email=email, ip_address=ip_address, settings=settings)
        user = await session.scalar(select(User).where(User.email == email))
        if user is None:
            burn_verification_time()
            ok = False
        else:
            ok = verify_password(user.encrypted_password, password) and not user.is_disabled
        if not ok:
            session.add(LoginFailure(email=email, ip_address=ip_address))
    if not ok or user is None:
        raise Unauthorized("e-mail or password is wrong", code="invalid_credentials")
    async with db.session(system=True) as session:
        await session.execute(delete(LoginFailure).where(LoginFailure.email == email))
        profile = await session.get(Profile, user.id)
        if profile is None:
            raise Unauthorized("this account belongs to no tenant", code="no_tenant")
        await session.execute(
            update(User).where(User.id == user.id).values(last_sign_in_at=utcnow())
        )
        issued = await _issue_token(
            session,
            profile=profile,
            kind="session",
            name="log-in",
            expires_at=utcnow() + timedelta(hours=settings.session_token_ttl_hours),
        )
    return issued, profile


async def authenticate(*, db: Database, token: str) -> Principal:
    """Resolve a bearer token to its principal, or raise :class:`Unauthorized`."""
    async with db.session(system=True) as session:
        row = (
            await session.execute(
                select(ApiToken, Profile, User)
                .join(Profile, Profile.id == ApiToken.profile_id)
                .join(User, User.id == Profile.id)
                .where(ApiToken.token_hash == hash_token(token))
            )
        ).one_or_none()
        if row is None:
            raise Unauthorized("the token is not valid", code="invalid_token")
        record, profile, user = row
        now = utcnow()
        if record.revoked_at is not None:
            raise Unauthorized("the token has been revoked", code="token_revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized("the token has expired; log in again", code="token_expired")
        if user.is_disabled:
            raise Unauthorized("the account is disabled", code="account_disabled")
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            # Throttled so a busy client does not write on every request.
            await session.execute(
                update(ApiToken).where(ApiToken.id == record.id).values(last_used_at=now)
            )
        return Principal(
            user_id=profile.id,
            tenant_id=profile.tenant_id,
            role=profile.role,
            email=user.email,
            token_id=record.id,
        )


def use_principal(session: AsyncSession, principal: Principal) -> None:
    """Scope ``session`` to the principal's tenant for its next transaction."""
    set_scope(session, Scope(tenant_id=principal.tenant_id, user_id=principal.user_id))


async def revoke_token(*, session: AsyncSession, principal: Principal, token_id: UUID) -> ApiToken:
    record = await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.profile_id == principal.user_id)
    )
    if record is None:
        raise NotFound("token not found")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await session.flush()
    return record


async def create_personal_token(
    *, session: AsyncSession, principal: Principal, data: ApiTokenCreate
) -> IssuedToken:
    profile = await get_profile(session=session, profile_id=principal.user_id)
    expires_at = utcnow() + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    return await _issue_token(
        session, profile=profile, kind="personal", name=data.name, expires_at=expires_at
    )


async def list_tokens(*, session: AsyncSession, principal: Principal) -> list[ApiToken]:
    result = await session.scalars(
        select(ApiToken)
        .where(ApiToken.profile_id == principal.user_id, ApiToken.kind == "personal")
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return list(result.all())


async def get_profile(*, session: AsyncSession, profile_id: UUID) -> Profile:
    profile = await session.get(Profile, profile_id)
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


async def update_me(*, session: AsyncSession, principal: Principal, data: MeUpdate) -> MeRead:
    user = await session.get(User, principal.user_id)
    profile = await get_profile(session=session, profile_id=principal.user_id)
    if user is None:
        raise NotFound("user not found")
    fields = data.model_fields_set
    if "full_name" in fields:
        user.full_name = data.full_name
    if "avatar_url" in fields:
        profile.avatar_url = data.avatar_url
    if data.new_password is not None:
        if not data.current_password or not verify_password(
            user.encrypted_password, data.current_password
        ):
            raise ValidationFailed("current password is wrong", field="current_password")
        user.encrypted_password = hash_password(data.new_password)
    await session.flush()
    return await get_me(session=session, principal=principal)


def _member_read(profile: Profile, user: User) -> MemberRead:
    return MemberRead(
        id=profile.id,
        email=user.email,
        full_name=user.full_name,
        role=profile.role,
        created_at=profile.created_at,
    )


async def list_members(*, session: AsyncSession) -> list[MemberRead]:
    rows = await session.execute(
        select(Profile, User)
        .join(User, User.id == Profile.id)
        .order_by(Profile.created_at, Profile.id)
    )
    return [_member_read(profile, user) for profile, user in rows.all()]


async def get_member(*, session: AsyncSession, member_id: UUID) -> MemberRead:
    row = (
        await session.execute(
            select(Profile, User).join(User, User.id == Profile.id).where(Profile.id == member_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("member not found")
    return _member_read(*row)


async def add_member(*, db: Database, principal: Principal, data: MemberCreate) -> MemberRead:
    """Create a user with a profile in the principal's tenant."""
    email = normalise_email(data.email)
    async with db.session(system=True) as session:
        if await _email_taken(session, email):
            raise Conflict(
                "an account with this e-mail already exists",
                code="email_taken",
                details={"field": "email"},
            )
    user_id = uuid4()
    password_hash = hash_password(data.password)
    try:
        async with db.session(tenant_id=principal.tenant_id, user_id=user_id) as session:
            tenant = await session.get(Tenant, principal.tenant_id)
            session.add(
                User(
                    id=user_id,
                    email=email,
                    encrypted_password=password_hash,
                    full_name=data.full_name,
                )
            )
            await session.flush()
            session.add(
                Profile(
                    id=user_id,
                    tenant_id=principal.tenant_id,
                    role=data.role,
                    tenant_name=tenant.name if tenant else None,
                )
            )
            await session.flush()
            await record_audit(
                session,
                tenant_id=principal.tenant_id,
                actor_id=principal.user_id,
                action="member.add",
                resource_type="profile",
                resource_id=user_id,
                details={"email": email, "role": data.role},
            )
            return await get_member(session=session, member_id=user_id)
    except IntegrityError as exc:
        raise Conflict("an account with this e-mail already exists", code="email_taken") from exc


async def _admin_count(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Profile).where(Profile.role == "admin")
        )
        or 0
    )


async def change_member_role(
    *, session: AsyncSession, principal: Principal, member_id: UUID, role: str
) -> MemberRead:
    profile = await session.scalar(
        select(Profile).where(Profile.id == member_id, Profile.tenant_id == principal.tenant_id)
    )
    if profile is None:
        raise NotFound("member not found")
    if profile.role == "admin" and role != "admin" and await _admin_count(session) <= 1:
        raise Conflict("a tenant needs at least one admin", code="last_admin")
    profile.role = role
    await session.flush()
    return await get_member(session=session, member_id=member_id)


async def remove_member(*, session: AsyncSession, principal: Principal, member_id: UUID) -> None:
    profile = await session.scalar(
        select(Profile).where(Profile.id == member_id, Profile.tenant_id == principal.tenant_id)
    )
    if profile is None:
        raise NotFound("member not found")
    if profile.role == "admin" and await _admin_count(session) <= 1:
        raise Conflict("a tenant needs at least one admin", code="last_admin")
    # Deleting the user removes the profile and its tokens by cascade.
    await session.execute(delete(User).where(User.id == member_id))


async def get_tenant(*, session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def update_tenant(
    *, session: AsyncSession, principal: Principal, data: TenantUpdate
) -> Tenant:
    tenant = await get_tenant(session=session, principal=principal)
    if "name" in data.model_fields_set and data.name is not None:
        tenant.name = data.name
        await session.execute(
            update(Profile).where(Profile.tenant_id == tenant.id).values(tenant_name=data.name)
        )
    if "domain" in data.model_fields_set:
        tenant.domain = data.domain
    await session.flush()
    return tenant


async def record_audit(
    session: AsyncSession,
    *,
    tenant_id: UUID,
    actor_id: UUID | None,
    action: str,
    resource_type: str,
    resource_id: UUID | None = None,
    details: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> None:
    """Append an entry to the tenant's audit log (never with secret values)."""
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


async def create_user_cli(
    *,
    runtime: Runtime,
    email: str,
    password: str,
    full_name: str | None,
    tenant_name: str | None,
    tenant_id: UUID | None,
    role: str,
) -> Profile:
    """Create a user from the command line, in a new tenant or an existing one."""
    email = normalise_email(email)
    password_hash = await runtime.passwords.hash(password)
    async with runtime.db.session(system=True) as session:
        if await _email_taken(session, email):
            raise Conflict(f"an account with e-mail {email} already exists", code="email_taken")
        if tenant_id is not None and await session.get(Tenant, tenant_id) is None:
            raise NotFound(f"tenant {tenant_id} not found")
        new_tenant = tenant_id is None
        tenant_id = tenant_id or uuid4()
        user_id = uuid4()
        name = tenant_name or email
        if new_tenant:
            session.add(Tenant(id=tenant_id, name=name))
        else:
            tenant = await session.get(Tenant, tenant_id)
            name = tenant.name if tenant and tenant.name else name
        session.add(
            User(
                id=user_id,
                email=email,
                encrypted_password=password_hash,
                full_name=full_name,
            )
        )
        await session.flush()
        profile = Profile(
            id=user_id, tenant_id=tenant_id, role="admin" if new_tenant else role, tenant_name=name
        )
        session.add(profile)
        await session.flush()
    return profile
