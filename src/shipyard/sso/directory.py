"""The hourly directory check's database side (a service: a session, never the network).

What an LDAP directory now says of each member it signed in is applied as a sign-in would
apply it, without the person present: a member whose entry is gone, or whose groups map to no
role, is disabled with every token revoked; one whose groups give another role gets it; one
disabled for having no role is enabled again once the groups give one. Admin-disabled members
and the break-glass admin are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts import service as accounts
from shipyard.accounts.models import Profile, Tenant, User
from shipyard.sso.identity import ExternalIdentity
from shipyard.sso.mapping import decide_role
from shipyard.sso.models import SsoIdentity, SsoProvider
from shipyard.sso.service import LoginProvider, settle_member, tenant_rules

NO_ROLE = "sso_no_role"


@dataclass
class DirectoryCheck:
    """What one provider's check changed."""

    checked: int = 0
    disabled: int = 0
    reenabled: int = 0
    role_changes: int = 0


async def providers_to_check(*, session: AsyncSession) -> list[LoginProvider]:
    """Every enabled LDAP provider, of every tenant, that has signed somebody in (system)."""
    linked = exists().where(SsoIdentity.provider_id == SsoProvider.id)
    rows = await session.scalars(
        select(SsoProvider)
        .where(SsoProvider.kind == "ldap", SsoProvider.enabled.is_(True), linked)
        .order_by(SsoProvider.created_at)
    )
    return [LoginProvider.of(row) for row in rows]


async def linked_subjects(*, session: AsyncSession, provider_id: UUID) -> list[str]:
    """The entry DNs of the people ``provider_id`` signed in, oldest link first."""
    rows = await session.scalars(
        select(SsoIdentity.subject)
        .where(SsoIdentity.provider_id == provider_id)
        .order_by(SsoIdentity.created_at)
    )
    return list(rows)


async def apply_directory_check(
    *,
    session: AsyncSession,
    provider: LoginProvider,
    found: dict[str, ExternalIdentity | None],
    actor_id: UUID | None = None,
) -> DirectoryCheck:
    """Apply what the directory said of each linked person in ``found`` (None: gone); audit
    every change (``sso.directory_check``, ``sso.role_change``) as ``actor_id`` (None: the
    hourly check)."""
    result = DirectoryCheck()
    tenant = await session.get(Tenant, provider.tenant_id)
    if tenant is None:
        return result
    rules = await tenant_rules(session=session, tenant_id=tenant.id)
    links = await session.scalars(
        select(SsoIdentity).where(
            SsoIdentity.provider_id == provider.id, SsoIdentity.subject.in_(list(found))
        )
    )
    for link in links:
        profile = await session.get(Profile, link.profile_id)
        user = await session.get(User, link.profile_id)
        if profile is None or user is None:
            continue
        result.checked += 1
        identity = found[link.subject]
        groups = sorted(set(identity.groups)) if identity is not None else []
        decision = decide_role(
            groups=groups,
            rules=rules,
            default_role=tenant.sso_default_role,
            provider_id=provider.id,
        )
        role = decision.role if identity is not None else None
        link.groups = groups
        link.role_rule_id = decision.rule.id if decision.rule and identity else None
        link.role_source = decision.source if identity is not None else None
        seen: dict[str, Any] = {
            "provider": provider.name,
            "subject": link.subject,
            "groups": groups,
        }
        if user.is_disabled and user.disabled_reason != NO_ROLE:
            continue  # an admin disabled them: only an admin enables them again
        if tenant.sso_break_glass_profile_id == profile.id:
            continue  # the way back in stays open whatever the directory says
        if role is None and user.is_disabled:
            continue  # disabled at an earlier check or sign-in already
        settled = await settle_member(
            session=session, profile=profile, user=user, role=role, break_glass=False
        )
        if settled.disabled:
            why = "gone from the directory" if identity is None else "their groups map to no role"
            revoked = settled.tokens_revoked
            details = {**seen, "result": "disabled", "reason": why, "tokens_revoked": revoked}
            await _record(session, profile, details, actor_id)
            result.disabled += 1
            continue
        if settled.reenabled:
            await _record(session, profile, {**seen, "result": "enabled", "role": role}, actor_id)
            result.reenabled += 1
        if settled.role_before is not None:
            await accounts.record_audit(
                session=session,
                tenant_id=profile.tenant_id,
                actor_id=actor_id,
                action="sso.role_change",
                resource_type="profile",
                resource_id=profile.id,
                details={"from": settled.role_before, "to": role, "by": "directory check", **seen},
            )
            result.role_changes += 1
    await session.flush()
    return result


async def record_check_failure(
    *, session: AsyncSession, provider: LoginProvider, reason: str, actor_id: UUID | None = None
) -> None:
    """A check that could not ask the directory: nothing was concluded; the team's admins see
    why in the audit log."""
    await accounts.record_audit(
        session=session,
        tenant_id=provider.tenant_id,
        actor_id=actor_id,
        action="sso.directory_check",
        resource_type="sso_provider",
        resource_id=provider.id,
        details={"provider": provider.name, "result": "failed", "reason": reason},
    )


async def _record(
    session: AsyncSession, profile: Profile, details: dict[str, Any], actor_id: UUID | None
) -> None:
    await accounts.record_audit(
        session=session,
        tenant_id=profile.tenant_id,
        actor_id=actor_id,
        action="sso.directory_check",
        resource_type="profile",
        resource_id=profile.id,
        details=details,
    )
