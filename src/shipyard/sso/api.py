"""Routes: the tenant's identity providers, group-to-role rules and log-in policy (admins), and
which rule gave a member their role."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import RuntimeDep, SessionDep, SettingsDep, acting
from shipyard.sso import admin, directory_flows, flows
from shipyard.sso.schemas import (
    DirectoryCheckResult,
    MemberSso,
    ProviderCreate,
    ProviderRead,
    ProviderTestResult,
    ProviderUpdate,
    RuleCreate,
    RuleOrder,
    RuleRead,
    RuleUpdate,
    SsoSettingsRead,
    SsoSettingsUpdate,
)

router = APIRouter(prefix="/sso", tags=["sso"])
Admin = Annotated[Actor, acting(Permission.MANAGE_SSO)]


# --- providers ---------------------------------------------------------------------------------


@router.get("/providers", response_model=list[ProviderRead])
async def list_providers(actor: Admin, session: SessionDep) -> list[ProviderRead]:
    """The team's identity providers (secrets never: ``has_secret``)."""
    return await admin.list_providers(session=session)


@router.post("/providers", response_model=ProviderRead, status_code=status.HTTP_201_CREATED)
async def create_provider(data: ProviderCreate, actor: Admin, runtime: RuntimeDep) -> ProviderRead:
    """An OpenID Connect issuer or an LDAP directory; ``config`` is checked for its kind."""
    return await flows.create_provider(runtime=runtime, actor=actor, data=data)


@router.get("/providers/{provider_id}", response_model=ProviderRead)
async def get_provider(provider_id: UUID, actor: Admin, session: SessionDep) -> ProviderRead:
    return await admin.get_provider(session=session, provider_id=provider_id)


@router.patch("/providers/{provider_id}", response_model=ProviderRead)
async def update_provider(
    provider_id: UUID, data: ProviderUpdate, actor: Admin, runtime: RuntimeDep
) -> ProviderRead:
    """Change the fields sent; the secret stays unless ``secret`` or ``clear_secret`` is sent."""
    return await flows.update_provider(
        runtime=runtime, actor=actor, provider_id=provider_id, data=data
    )


@router.delete("/providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(provider_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await admin.delete_provider(session=session, actor=actor, provider_id=provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/providers/{provider_id}/test", response_model=ProviderTestResult)
async def test_provider(provider_id: UUID, actor: Admin, runtime: RuntimeDep) -> ProviderTestResult:
    """Reach the provider as a sign-in would; 502 with the reason when it fails."""
    return await flows.test_provider(runtime=runtime, actor=actor, provider_id=provider_id)


@router.post("/providers/{provider_id}/directory-check", response_model=DirectoryCheckResult)
async def check_directory(
    provider_id: UUID, actor: Admin, runtime: RuntimeDep
) -> DirectoryCheckResult:
    """Run the hourly directory check of an LDAP provider now: members gone from the directory
    or left with no role are disabled, roles follow the groups; 502 when the directory cannot
    be asked (nothing changed)."""
    return await directory_flows.check_now(runtime=runtime, actor=actor, provider_id=provider_id)


# --- role rules --------------------------------------------------------------------------------


@router.get("/rules", response_model=list[RuleRead])
async def list_rules(actor: Admin, session: SessionDep) -> list[RuleRead]:
    """The team's group-to-role rules in order (the highest role among matches wins)."""
    return await admin.list_rules(session=session, tenant_id=actor.tenant_id)


@router.post("/rules", response_model=RuleRead, status_code=status.HTTP_201_CREATED)
async def create_rule(data: RuleCreate, actor: Admin, session: SessionDep) -> RuleRead:
    return await admin.create_rule(session=session, actor=actor, data=data)


@router.put("/rules/order", response_model=list[RuleRead])
async def order_rules(data: RuleOrder, actor: Admin, session: SessionDep) -> list[RuleRead]:
    """Every rule's id, in the new order."""
    return await admin.order_rules(session=session, actor=actor, data=data)


@router.patch("/rules/{rule_id}", response_model=RuleRead)
async def update_rule(
    rule_id: UUID, data: RuleUpdate, actor: Admin, session: SessionDep
) -> RuleRead:
    return await admin.update_rule(session=session, actor=actor, rule_id=rule_id, data=data)


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(rule_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await admin.delete_rule(session=session, actor=actor, rule_id=rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- policy and explanation ----------------------------------------------------------------------


@router.get("/settings", response_model=SsoSettingsRead)
async def get_settings(actor: Admin, session: SessionDep, settings: SettingsDep) -> SsoSettingsRead:
    """The log-in policy, the team's log-in URL and the redirect URL to register."""
    return await admin.get_settings(session=session, principal=actor.principal, settings=settings)


@router.patch("/settings", response_model=SsoSettingsRead)
async def update_settings(
    data: SsoSettingsUpdate, actor: Admin, runtime: RuntimeDep
) -> SsoSettingsRead:
    return await flows.update_settings(runtime=runtime, actor=actor, data=data)


@router.get("/members/{member_id}", response_model=MemberSso)
async def explain_member(member_id: UUID, actor: Admin, session: SessionDep) -> MemberSso:
    """A member's identities, and which rule (or the default) gave their role."""
    return await admin.explain_member(session=session, member_id=member_id)
