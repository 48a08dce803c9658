"""Accounts flows: the user actions that hash or check a password.

argon2 takes tens of milliseconds of CPU and a slot of ``runtime.passwords``; a burst of log-ins
would otherwise hold that many pooled connections and open transactions. So each flow reads what
it needs in one short transaction, hashes or verifies with no connection held, and writes the
outcome (with its audit entry) in another, through the services in
:mod:`shipyard.accounts.service`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from sqlalchemy.exc import IntegrityError

from shipyard.accounts import invitations, service, throttle
from shipyard.accounts.models import Profile
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, RequestContext
from shipyard.accounts.schemas import (
    AcceptInvitationRequest,
    InvitationPreview,
    MemberCreate,
    MemberRead,
    MeRead,
    MeUpdate,
    SignupMode,
    SignupRequest,
)
from shipyard.accounts.service import OpenedSession, normalise_email
from shipyard.errors import Conflict, Unauthorized, ValidationFailed

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

# Used by throttling when the request's address is unknown, so such requests share one budget.
UNKNOWN_ADDRESS = "unknown"


def _already_member() -> Conflict:
    return Conflict(
        "this e-mail is already a member of your team",
        code="already_member",
        details={"field": "email"},
    )


async def signup(
    *, runtime: Runtime, data: SignupRequest, context: RequestContext
) -> OpenedSession:
    """Create a user, their tenant and an admin profile, and open a session for them.

    Only when sign-up is open, within the address's budget. An e-mail that already has an
    account gets the same answer, in about the same time, with nothing created and a token
    that opens nothing: the answer never tells whether an e-mail is registered.
    """
    email = normalise_email(data.email)
    ip_address = context.ip_address or UNKNOWN_ADDRESS
    async with runtime.db.session(system=True) as session:
        await service.admit_signup(
            session=session, ip_address=ip_address, settings=runtime.settings
        )
    async with runtime.db.session(system=True) as session:
        taken = await service.email_taken(session=session, email=email)
    password_hash = await runtime.passwords.hash(data.password)
    if taken:
        return service.decoy_session(data=data, email=email, settings=runtime.settings)
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
    except IntegrityError:
        # Someone took the address while the password was being hashed.
        return service.decoy_session(data=data, email=email, settings=runtime.settings)


async def signup_mode(*, runtime: Runtime) -> SignupMode:
    """Whether sign-up is open, by invitation or closed on this server right now."""
    async with runtime.db.session(system=True) as session:
        return await service.signup_mode(session=session, settings=runtime.settings)


async def opens_on_signup(*, runtime: Runtime) -> bool:
    """Whether the log-in page sends a visitor to sign-up (a fresh install, sign-up open)."""
    async with runtime.db.session(system=True) as session:
        return await service.opens_on_signup(session=session, settings=runtime.settings)


async def login(
    *, runtime: Runtime, email: str, password: str, context: RequestContext
) -> OpenedSession:
    """Check the credentials and open a session, after the delay recent failures call for.

    The delay is slept with no connection held and before argon2 runs, so it slows guessing
    without costing the server anything; a caller hammering is refused (429) instead.
    """
    email = normalise_email(email)
    ip_address = context.ip_address or UNKNOWN_ADDRESS
    settings = runtime.settings
    async with runtime.db.session(system=True) as session:
        wait = await throttle.login_wait(
            session=session,
            email=email,
            ip_address=ip_address,
            settings=settings,
            now=runtime.clock.now(),
        )
        candidate = await service.find_login(session=session, email=email)
    if wait > 0:
        await asyncio.sleep(wait)
    # No account: verify against a dummy hash anyway, so the answer takes the same time.
    ok = await runtime.passwords.verify(candidate.password_hash if candidate else None, password)
    async with runtime.db.session(system=True) as session:
        if candidate is None or not ok or candidate.is_disabled:
            await throttle.record_login_failure(session=session, email=email, ip_address=ip_address)
        else:
            return await service.start_session(
                session=session,
                user_id=candidate.user_id,
                email=email,
                context=context,
                settings=settings,
            )
    raise Unauthorized("e-mail or password is wrong", code="invalid_credentials")


async def accept_invitation(
    *, runtime: Runtime, data: AcceptInvitationRequest, context: RequestContext
) -> OpenedSession:
    """Join the tenant of an invitation link as its invited role and open a session."""
    invitations.refuse_when_closed(runtime.settings)
    async with runtime.db.session(system=True) as session:
        invitation = await invitations.usable_invitation(
            session=session, token=data.token, now=runtime.clock.now()
        )
        tenant_id = invitation.tenant_id
    password_hash = await runtime.passwords.hash(data.password)
    user_id = uuid4()
    try:
        async with runtime.db.session(tenant_id=tenant_id, user_id=user_id) as session:
            return await service.accept_invitation(
                session=session,
                token=data.token,
                user_id=user_id,
                password_hash=password_hash,
                full_name=data.full_name,
                context=context,
                settings=runtime.settings,
            )
    except IntegrityError as exc:
        # The holder of the link is meant to own the address: telling them it already has an
        # account tells them nothing new (docs/decisions.md, "Sign-up and enumeration").
        raise Conflict(
            "this e-mail already has an account: log in with it instead",
            code="email_taken",
        ) from exc


async def preview_invitation(*, runtime: Runtime, token: str) -> InvitationPreview:
    """What an invitation link offers (e-mail, role, team), or why it no longer works."""
    invitations.refuse_when_closed(runtime.settings)
    async with runtime.db.session(system=True) as session:
        return await invitations.preview_invitation(
            session=session, token=token, now=runtime.clock.now()
        )


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
    """Create a user with a profile in the actor's tenant; audit ``member.add``.

    An e-mail already in the actor's tenant is a conflict (admins see their members anyway).
    One with an account in another tenant gets the same answer as a new one, after the same
    work, but nothing is created: the answer never tells which e-mails other tenants hold.
    """
    actor.require(Permission.MANAGE_MEMBERS)
    invitations.refuse_when_closed(runtime.settings)
    email = normalise_email(data.email)
    async with runtime.db.session(system=True) as session:
        owner = await service.tenant_of_email(session=session, email=email)
    if owner == actor.tenant_id:
        raise _already_member()
    password_hash = await runtime.passwords.hash(data.password)
    if owner is not None:
        return service.decoy_member(data=data, email=email)
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
    except IntegrityError:
        # Taken while the password was being hashed: answered like any taken address.
        return service.decoy_member(data=data, email=email)


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
