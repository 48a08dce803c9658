"""Accounts flows: the user actions that hash or check a password.

argon2 takes tens of milliseconds of CPU and a slot of ``runtime.passwords``; a burst of log-ins
would otherwise hold that many pooled connections and open transactions. So each flow reads what
it needs in one short transaction, hashes or verifies with no connection held, and writes the
outcome (with its audit entry) in another, through the services in
:mod:`shipyard.accounts.service`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from sqlalchemy.exc import IntegrityError

from shipyard.accounts import service
from shipyard.accounts.models import Profile
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, RequestContext
from shipyard.accounts.schemas import MemberCreate, MemberRead, MeRead, MeUpdate, SignupRequest
from shipyard.accounts.service import OpenedSession, normalise_email
from shipyard.errors import Conflict, Unauthorized, ValidationFailed

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

# Used by throttling when the request's address is unknown, so such requests share one budget.
UNKNOWN_ADDRESS = "unknown"


def _email_conflict(*, field: bool = False) -> Conflict:
    return Conflict(
        "an account with this e-mail already exists",
        code="email_taken",
        details={"field": "email"} if field else None,
    )


async def _refuse_taken_email(runtime: Runtime, email: str, *, field: bool = False) -> None:
    async with runtime.db.session(system=True) as session:
        if await service.email_taken(session=session, email=email):
            raise _email_conflict(field=field)


async def signup(
    *, runtime: Runtime, data: SignupRequest, context: RequestContext
) -> OpenedSession:
    """Create a user, their tenant and an admin profile, and open a session for them."""
    email = normalise_email(data.email)
    await _refuse_taken_email(runtime, email)
    password_hash = await runtime.passwords.hash(data.password)
    tenant_id, user_id = uuid4(), uuid4()
    try:
        async with runtime.db.session(tenant_id=tenant_id, user_id=user_id) as session:
            return await service.create_account(
                session=session,
                tenant_id=tenant_id,
                user_id=user_id,
                data=data,
                email=email,
                password_hash=password_hash,
                context=context,
                settings=runtime.settings,
            )
    except IntegrityError as exc:
        # Someone took the address while the password was being hashed.
        raise _email_conflict() from exc


async def login(
    *, runtime: Runtime, email: str, password: str, context: RequestContext
) -> OpenedSession:
    """Check the credentials (with brute-force throttling) and open a session."""
    email = normalise_email(email)
    ip_address = context.ip_address or UNKNOWN_ADDRESS
    settings = runtime.settings
    async with runtime.db.session(system=True) as session:
        await service.check_login_throttle(
            session=session, email=email, ip_address=ip_address, settings=settings
        )
        candidate = await service.find_login(session=session, email=email)
    # No account: verify against a dummy hash anyway, so the answer takes the same time.
    ok = await runtime.passwords.verify(candidate.password_hash if candidate else None, password)
    async with runtime.db.session(system=True) as session:
        if candidate is None or not ok or candidate.is_disabled:
            await service.record_login_failure(session=session, email=email, ip_address=ip_address)
        else:
            return await service.start_session(
                session=session,
                user_id=candidate.user_id,
                email=email,
                context=context,
                settings=settings,
            )
    raise Unauthorized("e-mail or password is wrong", code="invalid_credentials")


async def update_me(*, runtime: Runtime, actor: Actor, data: MeUpdate) -> MeRead:
    """Change the actor's name, avatar or password (checking the current one); audit it."""
    new_hash: str | None = None
    if data.new_password is not None:
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            current_hash = await service.password_hash_of(session=session, user_id=actor.user_id)
        if not data.current_password or not await runtime.passwords.verify(
            current_hash, data.current_password
        ):
            raise ValidationFailed("current password is wrong", field="current_password")
        new_hash = await runtime.passwords.hash(data.new_password)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.save_me(
            session=session, actor=actor, data=data, password_hash=new_hash
        )


async def add_member(*, runtime: Runtime, actor: Actor, data: MemberCreate) -> MemberRead:
    """Create a user with a profile in the actor's tenant; audit ``member.add``."""
    actor.require(Permission.MANAGE_MEMBERS)
    email = normalise_email(data.email)
    await _refuse_taken_email(runtime, email, field=True)
    password_hash = await runtime.passwords.hash(data.password)
    user_id = uuid4()
    try:
        # Scoped to the new user as well, so the row just inserted can be read back.
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=user_id) as session:
            return await service.create_member(
                session=session,
                actor=actor,
                user_id=user_id,
                email=email,
                password_hash=password_hash,
                full_name=data.full_name,
                role=data.role,
            )
    except IntegrityError as exc:
        raise _email_conflict() from exc


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
        return await service.create_user(
            session=session,
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            tenant_name=tenant_name,
            tenant_id=tenant_id,
            role=role,
        )
