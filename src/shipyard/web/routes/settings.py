"""Settings: the account, members, roles, invitations and members' tokens (admins), personal
API tokens, the log retention policy (admins).

Each form calls its accounts action (which writes the audit entry) and renders the result.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from shipyard.accounts import flows, invitations, service
from shipyard.accounts.models import ROLES
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.accounts.schemas import (
    ApiTokenCreate,
    InvitationCreate,
    MemberCreate,
    MemberUpdate,
)
from shipyard.accounts.service import MembersOverview
from shipyard.deployments import retention
from shipyard.deployments.retention_schemas import LogRetentionUpdate
from shipyard.deps import (
    ActorDep,
    ClockDep,
    CurrentUser,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    acting,
    attempt,
)
from shipyard.errors import ShipyardError
from shipyard.sso import admin as sso_admin
from shipyard.web.errors import error_page, field_errors, sentence
from shipyard.web.routes import web_router
from shipyard.web.templating import is_htmx, render

router = web_router()

FormText = Annotated[str, Form()]
MemberManager = Annotated[Actor, acting(Permission.MANAGE_MEMBERS)]
TokenOwner = Annotated[Actor, acting(Permission.MANAGE_OWN_TOKENS)]
LogAdmin = Annotated[Actor, acting(Permission.MANAGE_LOG_RETENTION)]


@router.get("/settings")
async def account(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    me = await service.get_me(session=session, principal=principal)
    return render(request, "settings/account.html", {"section": "settings", "me": me})


def _members_page(
    request: Request, overview: MembersOverview, *, status_code: int = 200, **extra: Any
) -> Response:
    context = {
        "section": "settings",
        "members": overview.members,
        "invitations": overview.invitations,
        "roles": ROLES,
        "values": {},
        "invite_values": {},
    }
    context.update(extra)
    return render(request, "settings/members.html", context, status_code=status_code)


@router.get("/settings/members")
async def members(
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    added: str | None = None,
    revoked: int | None = None,
    notice: str | None = None,
) -> Response:
    if added:
        notice = f"{added} was added."
    if revoked is not None:
        notice = f"{revoked} token(s) revoked."
    overview = await service.members_overview(session=session, principal=principal)
    sources: dict[UUID, str] = {}
    if principal.can(Permission.MANAGE_MEMBERS):
        sources = await sso_admin.sso_sources(session=session, tenant_id=principal.tenant_id)
    return _members_page(request, overview, notice=notice, sso_sources=sources)


@router.post("/settings/members")
async def add_member(
    request: Request,
    actor: MemberManager,
    runtime: RuntimeDep,
    email: FormText = "",
    full_name: FormText = "",
    password: FormText = "",
    role: FormText = "developer",
) -> Response:
    # No SessionDep here: the new member's password is hashed with no connection held.
    values = {"email": email, "full_name": full_name, "role": role}
    try:
        data = MemberCreate.model_validate(
            {
                "email": email.strip(),
                "full_name": full_name.strip() or None,
                "password": password,
                "role": role,
            }
        )
    except ValidationError as exc:
        overview = await service.read_members(db=runtime.db, principal=actor.principal)
        return _members_page(
            request, overview, status_code=422, values=values, errors=field_errors(exc)
        )
    try:
        member = await flows.add_member(runtime=runtime, actor=actor, data=data)
    except ShipyardError as exc:
        errors = {"email": sentence(exc.message)} if exc.code == "already_member" else {}
        overview = await service.read_members(db=runtime.db, principal=actor.principal)
        return _members_page(
            request,
            overview,
            status_code=exc.status_code,
            values=values,
            errors=errors,
            message=sentence(exc.message),
        )
    # Redirect after the write, so reloading the page does not submit the form again.
    return RedirectResponse(f"/settings/members?added={quote(member.email)}", status_code=303)


@router.post("/settings/members/{member_id}/role")
async def change_role(
    request: Request,
    member_id: UUID,
    actor: MemberManager,
    session: SessionDep,
    role: FormText = "",
) -> Response:
    try:
        data = MemberUpdate.model_validate({"role": role})
    except ValidationError:
        return error_page(request, 422, "Choose a role: admin, developer or viewer.")
    try:
        async with attempt(session):
            member = await service.change_member_role(
                session=session, actor=actor, member_id=member_id, role=data.role
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    if is_htmx(request):
        return render(
            request,
            "settings/_member_row.html",
            {"member": member, "roles": ROLES, "notice": f"{member.email} is now {member.role}."},
        )
    return RedirectResponse("/settings/members", status_code=303)


@router.post("/settings/members/{member_id}/remove")
async def remove_member(
    request: Request, member_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            await service.remove_member(session=session, actor=actor, member_id=member_id)
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    if is_htmx(request):
        return Response(status_code=200)
    return RedirectResponse("/settings/members", status_code=303)


@router.post("/settings/members/{member_id}/deactivate")
async def deactivate_member(
    request: Request, member_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            member = await service.deactivate_member(
                session=session, actor=actor, member_id=member_id
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    notice = f"{member.email} was deactivated; their tokens were revoked."
    return RedirectResponse(f"/settings/members?notice={quote(notice)}", status_code=303)


@router.post("/settings/members/{member_id}/reactivate")
async def reactivate_member(
    request: Request, member_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            member = await service.reactivate_member(
                session=session, actor=actor, member_id=member_id
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    notice = f"{member.email} was reactivated."
    return RedirectResponse(f"/settings/members?notice={quote(notice)}", status_code=303)


@router.post("/settings/invitations")
async def create_invitation(
    request: Request,
    actor: MemberManager,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    email: FormText = "",
    role: FormText = "developer",
) -> Response:
    values = {"email": email, "role": role}
    try:
        data = InvitationCreate.model_validate({"email": email.strip(), "role": role})
    except ValidationError as exc:
        overview = await service.members_overview(session=session, principal=actor.principal)
        return _members_page(
            request,
            overview,
            status_code=422,
            invite_values=values,
            invite_errors=field_errors(exc),
        )
    try:
        async with attempt(session):
            issued = await invitations.create_invitation(
                session=session, actor=actor, data=data, settings=settings, now=clock.now()
            )
    except ShipyardError as exc:
        overview = await service.members_overview(session=session, principal=actor.principal)
        errors = {"email": sentence(exc.message)} if exc.code == "already_member" else {}
        return _members_page(
            request,
            overview,
            status_code=exc.status_code,
            invite_values=values,
            invite_errors=errors,
            message=sentence(exc.message),
        )
    # The link is shown here once; the list shows the invitation without it.
    overview = await service.members_overview(session=session, principal=actor.principal)
    return _members_page(
        request, overview, status_code=201, invitation_link=issued.link, invited=issued.invitation
    )


@router.post("/settings/invitations/{invitation_id}/revoke")
async def revoke_invitation(
    request: Request,
    invitation_id: UUID,
    actor: MemberManager,
    session: SessionDep,
    clock: ClockDep,
) -> Response:
    try:
        async with attempt(session):
            invitation = await invitations.revoke_invitation(
                session=session, actor=actor, invitation_id=invitation_id, now=clock.now()
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    if is_htmx(request):
        return render(request, "settings/_invitation_row.html", {"invitation": invitation})
    return RedirectResponse("/settings/members", status_code=303)


@router.get("/settings/members/{member_id}/tokens")
async def member_tokens(
    request: Request, member_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        page = await service.member_tokens_page(session=session, actor=actor, member_id=member_id)
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    return render(
        request,
        "settings/member_tokens.html",
        {"section": "settings", "member": page.member, "tokens": page.tokens},
    )


@router.post("/settings/members/{member_id}/tokens/{token_id}/revoke")
async def revoke_member_token(
    request: Request, member_id: UUID, token_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            record = await service.revoke_member_token(
                session=session, actor=actor, member_id=member_id, token_id=token_id
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    if is_htmx(request):
        return render(
            request, "settings/_token_row.html", {"token": record, "member_id": member_id}
        )
    return RedirectResponse(f"/settings/members/{member_id}/tokens", status_code=303)


@router.post("/settings/members/{member_id}/tokens/revoke-all")
async def revoke_member_tokens(
    request: Request, member_id: UUID, actor: MemberManager, session: SessionDep
) -> Response:
    try:
        async with attempt(session):
            revoked = await service.revoke_member_tokens(
                session=session, actor=actor, member_id=member_id
            )
    except ShipyardError as exc:
        return error_page(request, exc.status_code, sentence(exc.message))
    return RedirectResponse(f"/settings/members?revoked={revoked}", status_code=303)


async def _tokens_page(
    request: Request,
    principal: Principal,
    session: SessionDep,
    *,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    tokens = await service.list_tokens(session=session, principal=principal)
    context = {"section": "settings", "tokens": tokens, "values": {}}
    context.update(extra)
    return render(request, "settings/tokens.html", context, status_code=status_code)


@router.get("/settings/tokens")
async def tokens(request: Request, principal: CurrentUser, session: SessionDep) -> Response:
    return await _tokens_page(request, principal, session)


@router.post("/settings/tokens")
async def create_token(
    request: Request,
    actor: TokenOwner,
    session: SessionDep,
    name: FormText = "",
    expires_in_days: FormText = "",
) -> Response:
    values = {"name": name, "expires_in_days": expires_in_days}
    try:
        data = ApiTokenCreate.model_validate(
            {"name": name.strip(), "expires_in_days": expires_in_days.strip() or None}
        )
    except ValidationError as exc:
        return await _tokens_page(
            request,
            actor.principal,
            session,
            status_code=422,
            values=values,
            errors=field_errors(exc),
        )
    issued = await service.create_token(session=session, actor=actor, data=data)
    return await _tokens_page(
        request,
        actor.principal,
        session,
        status_code=201,
        created=issued.token,
        created_name=data.name,
    )


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, token_id: UUID, actor: ActorDep, session: SessionDep
) -> Response:
    record = await service.revoke_token(session=session, actor=actor, token_id=token_id)
    if is_htmx(request):
        return render(request, "settings/_token_row.html", {"token": record})
    return RedirectResponse("/settings/tokens", status_code=303)


# The Logs tab: the retention policy and the size of the tenant's log (admins). ---------------


@router.get("/settings/logs")
async def log_retention_page(
    request: Request, actor: LogAdmin, session: SessionDep, settings: SettingsDep, saved: int = 0
) -> Response:
    policy = await retention.read_policy(
        session=session,
        tenant_id=actor.tenant_id,
        defaults=retention.RetentionDefaults.of(settings),
    )
    values = {
        "days": "" if policy.days is None else str(policy.days),
        "lines": "" if policy.lines is None else str(policy.lines),
    }
    return render(
        request,
        "settings/logs.html",
        {
            "section": "settings",
            "policy": policy,
            "values": values,
            "notice": "The retention policy was saved." if saved else None,
        },
    )


@router.post("/settings/logs")
async def save_log_retention(
    request: Request,
    actor: LogAdmin,
    session: SessionDep,
    settings: SettingsDep,
    days: FormText = "",
    lines: FormText = "",
) -> Response:
    defaults = retention.RetentionDefaults.of(settings)
    values = {"days": days.strip(), "lines": lines.strip()}
    try:
        data = LogRetentionUpdate.model_validate(
            {"days": values["days"] or None, "lines": values["lines"] or None}
        )
    except ValidationError as exc:
        policy = await retention.read_policy(
            session=session, tenant_id=actor.tenant_id, defaults=defaults
        )
        return render(
            request,
            "settings/logs.html",
            {
                "section": "settings",
                "policy": policy,
                "values": values,
                "errors": field_errors(exc),
            },
            status_code=422,
        )
    async with attempt(session):
        await retention.set_policy(session=session, actor=actor, data=data, defaults=defaults)
    return RedirectResponse("/settings/logs?saved=1", status_code=303)
