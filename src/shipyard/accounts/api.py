"""Routes: auth (sign-up, log-in, log-out, tokens), me, and tenant members."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from shipyard.accounts import service
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.accounts.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenRead,
    LoginRequest,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    MeRead,
    MeUpdate,
    SessionRead,
    SignupRequest,
    TenantRead,
    TenantUpdate,
)
from shipyard.deps import CurrentUser, DatabaseDep, SessionDep, SettingsDep, client_ip, require

router = APIRouter()


async def _session_read(
    db: DatabaseDep, issued: service.IssuedToken, profile_id: UUID
) -> SessionRead:
    async with db.session(tenant_id=issued.record.tenant_id, user_id=profile_id) as session:
        principal = Principal(
            user_id=profile_id, tenant_id=issued.record.tenant_id, role="viewer", email=""
        )
        me = await service.get_me(session=session, principal=principal)
    assert issued.record.expires_at is not None
    return SessionRead(access_token=issued.token, expires_at=issued.record.expires_at, user=me)


@router.post(
    "/auth/signup", response_model=SessionRead, status_code=status.HTTP_201_CREATED, tags=["auth"]
)
async def signup(data: SignupRequest, db: DatabaseDep, settings: SettingsDep) -> SessionRead:
    """Create an account, its tenant and an admin profile; returns a session token."""
    issued, profile = await service.signup(db=db, data=data, settings=settings)
    return await _session_read(db, issued, profile.id)


@router.post("/auth/login", response_model=SessionRead, tags=["auth"])
async def login(
    data: LoginRequest, request: Request, db: DatabaseDep, settings: SettingsDep
) -> SessionRead:
    issued, profile = await service.login(
        db=db,
        email=data.email,
        password=data.password,
        ip_address=client_ip(request),
        settings=settings,
    )
    return await _session_read(db, issued, profile.id)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(principal: CurrentUser, session: SessionDep) -> Response:
    """Revoke the token this request was made with."""
    if principal.token_id is not None:
        from sqlalchemy import update

        from shipyard.accounts.models import ApiToken

        await session.execute(
            update(ApiToken)
            .where(ApiToken.id == principal.token_id)
            .values(revoked_at=service.utcnow())
        )
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
    data: ApiTokenCreate,
    principal: Annotated[Principal, require(Permission.MANAGE_OWN_TOKENS)],
    session: SessionDep,
) -> ApiTokenCreated:
    """Create a personal API token for automation; the token is shown only here."""
    issued = await service.create_personal_token(session=session, principal=principal, data=data)
    await service.record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="token.create",
        resource_type="api_token",
        resource_id=issued.record.id,
        details={"name": data.name},
    )
    return ApiTokenCreated(
        **ApiTokenRead.model_validate(issued.record).model_dump(), token=issued.token
    )


@router.delete("/auth/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def revoke_token(token_id: UUID, principal: CurrentUser, session: SessionDep) -> Response:
    await service.revoke_token(session=session, principal=principal, token_id=token_id)
    await service.record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="token.revoke",
        resource_type="api_token",
        resource_id=token_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeRead, tags=["me"])
async def me(principal: CurrentUser, session: SessionDep) -> MeRead:
    return await service.get_me(session=session, principal=principal)


@router.patch("/me", response_model=MeRead, tags=["me"])
async def update_me(data: MeUpdate, principal: CurrentUser, session: SessionDep) -> MeRead:
    return await service.update_me(session=session, principal=principal, data=data)


@router.get("/tenant", response_model=TenantRead, tags=["tenant"])
async def get_tenant(principal: CurrentUser, session: SessionDep) -> TenantRead:
    return TenantRead.model_validate(await service.get_tenant(session=session, principal=principal))


@router.patch("/tenant", response_model=TenantRead, tags=["tenant"])
async def update_tenant(
    data: TenantUpdate,
    principal: Annotated[Principal, require(Permission.MANAGE_MEMBERS)],
    session: SessionDep,
) -> TenantRead:
    tenant = await service.update_tenant(session=session, principal=principal, data=data)
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
async def add_member(
    data: MemberCreate,
    principal: Annotated[Principal, require(Permission.MANAGE_MEMBERS)],
    db: DatabaseDep,
) -> MemberRead:
    return await service.add_member(db=db, principal=principal, data=data)


@router.patch("/tenant/members/{member_id}", response_model=MemberRead, tags=["tenant"])
async def update_member(
    member_id: UUID,
    data: MemberUpdate,
    principal: Annotated[Principal, require(Permission.MANAGE_MEMBERS)],
    session: SessionDep,
) -> MemberRead:
    member = await service.change_member_role(
        session=session, principal=principal, member_id=member_id, role=data.role
    )
    await service.record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="member.role",
        resource_type="profile",
        resource_id=member_id,
        details={"role": data.role},
    )
    return member


@router.delete(
    "/tenant/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tenant"]
)
async def remove_member(
    member_id: UUID,
    principal: Annotated[Principal, require(Permission.MANAGE_MEMBERS)],
    session: SessionDep,
) -> Response:
    await service.remove_member(session=session, principal=principal, member_id=member_id)
    await service.record_audit(
        session,
        tenant_id=principal.tenant_id,
        actor_id=principal.user_id,
        action="member.remove",
        resource_type="profile",
        resource_id=member_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
