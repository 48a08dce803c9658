"""Invitations: an admin invites an e-mail with a role; the link's holder joins the tenant.

The link carries a random token stored only as its SHA-256 hash; it works once, until it
expires (``invitation_ttl_hours``) or an admin revokes it. Inviting an e-mail that already has
a pending invitation in the tenant revokes the older link, so one link per person works. These
are services: each takes a session and writes its own audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.models import Invitation, Profile, Tenant, User
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.accounts.schemas import (
    InvitationCreate,
    InvitationPreview,
    InvitationRead,
    InvitationStatus,
)
from shipyard.accounts.tokens import hash_token, new_invitation_token
from shipyard.config import Settings
from shipyard.errors import Conflict, NotFound, PermissionDenied


def status_of(invitation: Invitation, *, now: datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def invitation_read(invitation: Invitation, *, now: datetime) -> InvitationRead:
    return InvitationRead(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,
        status=status_of(invitation, now=now),
        invited_by=invitation.invited_by,
        expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at,
        revoked_at=invitation.revoked_at,
        created_at=invitation.created_at,
    )


@dataclass(frozen=True)
class IssuedInvitation:
    """A new invitation and its link (shown once)."""

    link: str
    invitation: InvitationRead


def refuse_when_closed(settings: Settings) -> None:
    if settings.signup == "closed":
        raise PermissionDenied(
            "sign-up is closed on this server: only an operator creates accounts "
            "(shipyard user create)",
            code="signup_closed",
        )


async def create_invitation(
    *,
    session: AsyncSession,
    actor: Actor,
    data: InvitationCreate,
    settings: Settings,
    now: datetime,
) -> IssuedInvitation:
    """Invite ``data.email`` into the actor's tenant; audit ``invitation.create``.

    An e-mail already a member here is a conflict (the admin sees their members anyway); an
    e-mail with an account in another tenant is invited like any other, so the answer never
    tells whether it exists elsewhere.
    """
    actor.require(Permission.MANAGE_MEMBERS)
    refuse_when_closed(settings)
    email = data.email.strip().lower()
    member = await session.scalar(
        select(Profile.id)
        .join(User, User.id == Profile.id)
        .where(User.email == email, Profile.tenant_id == actor.tenant_id)
    )
    if member is not None:
        raise Conflict(
            "this e-mail is already a member of your team",
            code="already_member",
            details={"field": "email"},
        )
    # One working link per person: a new invitation replaces the pending ones.
    await session.execute(
        update(Invitation)
        .where(
            Invitation.tenant_id == actor.tenant_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = new_invitation_token()
    invitation = Invitation(
        tenant_id=actor.tenant_id,
        email=email,
        role=data.role,
        token_hash=hash_token(token),
        invited_by=actor.user_id,
        expires_at=now + timedelta(hours=settings.invitation_ttl_hours),
    )
    session.add(invitation)
    await session.flush()
    await session.refresh(invitation)
    await audit(
        session,
        actor=actor,
        action="invitation.create",
        resource_type="invitation",
        resource_id=invitation.id,
        details={"email": email, "role": data.role},
    )
    return IssuedInvitation(
        link=f"{settings.base_url.rstrip('/')}/invite/{token}",
        invitation=invitation_read(invitation, now=now),
    )


async def list_invitations(
    *, session: AsyncSession, actor: Actor, now: datetime
) -> list[InvitationRead]:
    """The tenant's invitations, newest first (admins only: they name people's e-mails)."""
    actor.require(Permission.MANAGE_MEMBERS)
    rows = await session.scalars(
        select(Invitation)
        .where(Invitation.tenant_id == actor.tenant_id)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    )
    return [invitation_read(row, now=now) for row in rows.all()]


async def revoke_invitation(
    *, session: AsyncSession, actor: Actor, invitation_id: UUID, now: datetime
) -> InvitationRead:
    """Make an invitation's link stop working; audit ``invitation.revoke``."""
    actor.require(Permission.MANAGE_MEMBERS)
    invitation = await session.scalar(
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.tenant_id == actor.tenant_id)
        .with_for_update()
    )
    if invitation is None:
        raise NotFound("invitation not found")
    if invitation.accepted_at is not None:
        raise Conflict("this invitation has already been accepted", code="invitation_accepted")
    if invitation.revoked_at is None:
        invitation.revoked_at = now
        await session.flush()
    await audit(
        session,
        actor=actor,
        action="invitation.revoke",
        resource_type="invitation",
        resource_id=invitation.id,
        details={"email": invitation.email},
    )
    return invitation_read(invitation, now=now)


def _unusable(status: InvitationStatus) -> NotFound:
    # One code per reason, so the page can say why; the token was already proven by its hash.
    reasons = {
        "accepted": "this invitation has already been used",
        "revoked": "this invitation has been revoked; ask your admin for a new one",
        "expired": "this invitation has expired; ask your admin for a new one",
    }
    return NotFound(reasons[status], code=f"invitation_{status}")


async def usable_invitation(
    *, session: AsyncSession, token: str, now: datetime, lock: bool = False
) -> Invitation:
    """The pending invitation of ``token``, or :class:`NotFound` saying why not."""
    query = select(Invitation).where(Invitation.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update()
    invitation = await session.scalar(query)
    if invitation is None:
        raise NotFound("this invitation link is not valid", code="invitation_invalid")
    status = status_of(invitation, now=now)
    if status != "pending":
        raise _unusable(status)
    return invitation


async def preview_invitation(
    *, session: AsyncSession, token: str, now: datetime
) -> InvitationPreview:
    """What the link's holder is invited to (system session: the tenant is not known yet)."""
    invitation = await usable_invitation(session=session, token=token, now=now)
    tenant = await session.get(Tenant, invitation.tenant_id)
    return InvitationPreview(
        email=invitation.email,
        role=invitation.role,
        tenant_name=tenant.name if tenant else None,
        expires_at=invitation.expires_at,
    )
