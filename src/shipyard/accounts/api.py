"""Routes: auth (sign-up, log-in, log-out, tokens), me, and tenant members.

Each route parses its input, calls the one function of its action in
:mod:`shipyard.accounts.service` or :mod:`shipyard.accounts.flows`, and renders the answer.
Routes that hash or check a password take the runtime, never a ``SessionDep``: a pooled
connection must not wait on argon2.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response, status

from shipyard.accounts import flows, invitations, service
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.accounts.schemas import (
    AcceptInvitationRequest,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    InvitationCreate,
    InvitationCreated,
    InvitationRead,
    LoginRequest,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    MeRead,
    MeUpdate,
    SessionRead,
    SignupModeRead,
    SignupRequest,
    TenantRead,
    TenantUpdate,
    TokensRevoked,
)
from shipyard.deps import (
    ActorDep,
    ClockDep,
    CurrentUser,
    RequestContextDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    acting,
)

router = APIRouter()

MemberManager = Annotated[Actor, acting(Permission.MANAGE_MEMBERS)]
TokenOwner = Annotated[Actor, acting(Permission.MANAGE_OWN_TOKENS)]


def _session_read(opened: service.OpenedSession) -> SessionRead:
    return SessionRead(access_token=opened.token, expires_at=opened.expires_at, user=opened.me)


@router.post(
    "/auth/signup", response_model=SessionRead, status_code=status.HTTP_201_CREATED, tags=["auth"]
)
async def signup(
    data: SignupRequest, runtime: RuntimeDep, context: RequestContextDep
) -> SessionRead:
    """Create an account, its tenant and an admin profile; returns a session token.

    Only while sign-up is open (``GET /auth/signup-mode``), a few times per address. An e-mail
    that already has an account gets the same answer, but nothing is created and the token
    opens nothing: log in with that account instead.
    """
    return _session_read(await flows.signup(runtime=runtime, data=data, context=context))


@router.get("/auth/signup-mode", response_model=SignupModeRead, tags=["auth"])
async def signup_mode(runtime: RuntimeDep) -> SignupModeRead:
    """Whether sign-up is open, by invitation only, or closed on this server."""
    return SignupModeRead(signup=await flows.signup_mode(runtime=runtime))


@router.post(
    "/auth/accept-invitation",
    response_model=SessionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["auth"],
)
async def accept_invitation(
    data: AcceptInvitationRequest, runtime: RuntimeDep, context: RequestContextDep
) -> SessionRead:
    """Join the team of an invitation link (its token) with a password; returns a session."""
    opened = await flows.accept_invitation(runtime=runtime, data=data, context=context)
    return _session_read(opened)


@router.post("/auth/login", response_model=SessionRead, tags=["auth"])
async def login(data: LoginRequest, runtime: RuntimeDep, context: RequestContextDep) -> SessionRead:
    opened = await flows.login(
        runtime=runtime, email=data.email, password=data.password, context=context
    )
    return _session_read(opened)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(actor: ActorDep, session: SessionDep) -> Response:
    """Revoke the token this request was made with."""
    await service.logout(session=session, actor=actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/tokens", response_model=list[ApiTokenRead], tags=["auth"])
async def list_tokens(principal: CurrentUser, session: SessionDep) -> list[ApiTokenRead]:
    tokens = await service.list_tokens(session=session, principal=principal)
    return [ApiTokenRead.model_validate(token) for token in tokens]


@router.post(
    "/auth/tokens",
    response_model=ApiTokenCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["auth"],
)
async def create_token(
    data: ApiTokenCreate, actor: TokenOwner, session: SessionDep
) -> ApiTokenCreated:
    """Create a personal API token for automation; the token is shown only here."""
    issued = await service.create_token(session=session, actor=actor, data=data)
    return ApiTokenCreated(
        **ApiTokenRead.model_validate(issued.record).model_dump(), token=issued.token
    )


@router.delete("/auth/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def revoke_token(token_id: UUID, actor: ActorDep, session: SessionDep) -> Response:
    await service.revoke_token(session=session, actor=actor, token_id=token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeRead, tags=["me"])
async def me(principal: CurrentUser, session: SessionDep) -> MeRead:
    return await service.get_me(session=session, principal=principal)


@router.patch("/me", response_model=MeRead, tags=["me"])
async def update_me(data: MeUpdate, actor: ActorDep, runtime: RuntimeDep) -> MeRead:
    return await flows.update_me(runtime=runtime, actor=actor, data=data)


@router.get("/tenant", response_model=TenantRead, tags=["tenant"])
async def get_tenant(principal: CurrentUser, session: SessionDep) -> TenantRead:
    return TenantRead.model_validate(await service.get_tenant(session=session, principal=principal))


@router.patch("/tenant", response_model=TenantRead, tags=["tenant"])
async def update_tenant(
    data: TenantUpdate, actor: MemberManager, session: SessionDep
) -> TenantRead:
    tenant = await service.update_tenant(session=session, actor=actor, data=data)
    return TenantRead.model_validate(tenant)


@router.get("/tenant/members", response_model=list[MemberRead], tags=["tenant"])
async def list_members(principal: CurrentUser, session: SessionDep) -> list[MemberRead]:
    return await service.list_members(session=session)


@router.get("/tenant/members/{member_id}", response_model=MemberRead, tags=["tenant"])
async def get_member(member_id: UUID, principal: CurrentUser, session: SessionDep) -> MemberRead:
    return await service.get_member(session=session, member_id=member_id)


@router.post(
    "/tenant/members",
    response_model=MemberRead,
    status_code=status.HTTP_201_CREATED,
    tags=["tenant"],
)
async def add_member(data: MemberCreate, actor: MemberManager, runtime: RuntimeDep) -> MemberRead:
    return await flows.add_member(runtime=runtime, actor=actor, data=data)


@router.patch("/tenant/members/{member_id}", response_model=MemberRead, tags=["tenant"])
async def update_member(
    member_id: UUID, data: MemberUpdate, actor: MemberManager, session: SessionDep
) -> MemberRead:
    return await service.change_member_role(
        session=session, actor=actor, member_id=member_id, role=data.role
    )


@router.delete(
    "/tenant/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tenant"]
)
async def remove_member(member_id: UUID, actor: MemberManager, session: SessionDep) -> Response:
    await service.remove_member(session=session, actor=actor, member_id=member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/tenant/members/{member_id}/deactivate", response_model=MemberRead, tags=["tenant"])
async def deactivate_member(
    member_id: UUID, actor: MemberManager, session: SessionDep
) -> MemberRead:
    """Disable a member and revoke all their tokens (sessions and personal); not the last admin."""
    return await service.deactivate_member(session=session, actor=actor, member_id=member_id)


@router.post("/tenant/members/{member_id}/reactivate", response_model=MemberRead, tags=["tenant"])
async def reactivate_member(
    member_id: UUID, actor: MemberManager, session: SessionDep
) -> MemberRead:
    """Enable a deactivated member again; they sign in anew (old tokens stay revoked)."""
    return await service.reactivate_member(session=session, actor=actor, member_id=member_id)


@router.get(
    "/tenant/members/{member_id}/tokens", response_model=list[ApiTokenRead], tags=["tenant"]
)
async def list_member_tokens(
    member_id: UUID, actor: MemberManager, session: SessionDep
) -> list[ApiTokenRead]:
    """A member's personal API tokens (admins), to revoke one that leaked."""
    tokens = await service.list_member_tokens(session=session, actor=actor, member_id=member_id)
    return [ApiTokenRead.model_validate(token) for token in tokens]


@router.delete(
    "/tenant/members/{member_id}/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["tenant"],
)
async def revoke_member_token(
    member_id: UUID, token_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    await service.revoke_member_token(
        session=session, actor=actor, member_id=member_id, token_id=token_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/tenant/members/{member_id}/tokens", response_model=TokensRevoked, tags=["tenant"])
async def revoke_member_tokens(
    member_id: UUID, actor: MemberManager, session: SessionDep
) -> TokensRevoked:
    """Revoke every token of a member, log-in sessions included: signs them out everywhere."""
    revoked = await service.revoke_member_tokens(session=session, actor=actor, member_id=member_id)
    return TokensRevoked(revoked=revoked)


@router.get("/tenant/invitations", response_model=list[InvitationRead], tags=["tenant"])
async def list_invitations(
    actor: MemberManager, session: SessionDep, clock: ClockDep
) -> list[InvitationRead]:
    return await invitations.list_invitations(session=session, actor=actor, now=clock.now())


@router.post(
    "/tenant/invitations",
    response_model=InvitationCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["tenant"],
)
async def create_invitation(
    data: InvitationCreate,
    actor: MemberManager,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> InvitationCreated:
    """Invite an e-mail with a role; the link (``{base_url}/invite/{token}``) is shown only here.

    Until Shipyard sends e-mail, hand the link to the person yourself.
    """
    issued = await invitations.create_invitation(
        session=session, actor=actor, data=data, settings=settings, now=clock.now()
    )
    return InvitationCreated(**issued.invitation.model_dump(), link=issued.link)


@router.delete(
    "/tenant/invitations/{invitation_id}", response_model=InvitationRead, tags=["tenant"]
)
async def revoke_invitation(
    invitation_id: UUID, actor: MemberManager, session: SessionDep, clock: ClockDep
) -> InvitationRead:
    return await invitations.revoke_invitation(
        session=session, actor=actor, invitation_id=invitation_id, now=clock.now()
    )
