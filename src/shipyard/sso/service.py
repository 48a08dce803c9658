"""Single sign-on in the database: what a sign-in needs about a provider, and the provisioning
step every sign-in ends with (role from the mapping, just-in-time account, link, session).

A session, never the network: the OIDC and LDAP flows talk to the identity provider first, with
no transaction open, then call :func:`provision` or :func:`record_failure` in a system session
(the tenant is the provider's, known only once the provider row is read).

Linking rules (docs/decisions.md):

- an identity is keyed by (provider, subject): once linked it always signs in the same member,
  whatever e-mail the provider reports later;
- a first sign-in whose e-mail has no account creates one in the provider's tenant (an unusable
  password, ``!sso``) with the mapped role;
- a first sign-in whose e-mail belongs to a member of the provider's tenant links to that member
  only when the provider vouches for the address (``ExternalIdentity.email_verified``: OIDC's
  ``email_verified``; a directory always does); else it is refused;
- an e-mail of another tenant's account is always refused (a provider only signs people into
  its own tenant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts import service as accounts
from shipyard.accounts.audit import audit
from shipyard.accounts.models import Profile, Tenant, User
from shipyard.accounts.principal import Actor, Principal, RequestContext
from shipyard.accounts.service import OpenedSession, normalise_email, utcnow
from shipyard.config import Settings
from shipyard.errors import NotFound
from shipyard.sso.identity import ExternalIdentity, SsoRefused
from shipyard.sso.mapping import RoleDecision, Rule, decide_role
from shipyard.sso.models import SsoIdentity, SsoProvider, SsoRoleRule

# The password hash of an account made by single sign-on: argon2 cannot parse it, so no
# password ever matches it.
SSO_PASSWORD_HASH = "!sso"
NOBODY = UUID(int=0)


@dataclass(frozen=True)
class LoginProvider:
    """What a sign-in needs about a provider, read in a system session."""

    id: UUID
    tenant_id: UUID
    kind: str
    name: str
    enabled: bool
    config: dict[str, Any]
    secret: str | None

    @classmethod
    def of(cls, provider: SsoProvider) -> LoginProvider:
        """The row's settings and decrypted secret, kept past its session."""
        return cls(
            id=provider.id,
            tenant_id=provider.tenant_id,
            kind=provider.kind,
            name=provider.name,
            enabled=provider.enabled,
            config=dict(provider.config),
            secret=provider.secret,
        )


async def login_provider(*, session: AsyncSession, provider_id: UUID) -> LoginProvider:
    """The enabled provider ``provider_id`` for a sign-in (system session); NotFound otherwise."""
    provider = await session.get(SsoProvider, provider_id)
    if provider is None or not provider.enabled:
        raise NotFound("this sign-in provider does not exist or is turned off")
    return LoginProvider.of(provider)


def _outsider(provider: LoginProvider, *, email: str, context: RequestContext) -> Actor:
    """The actor of an entry about someone who has no member to name (yet)."""
    principal = Principal(
        user_id=NOBODY, tenant_id=provider.tenant_id, role="viewer", email=email or "unknown"
    )
    return Actor(principal=principal, context=context)


def _member(profile: Profile, *, email: str, context: RequestContext) -> Actor:
    principal = Principal(
        user_id=profile.id, tenant_id=profile.tenant_id, role=profile.role, email=email
    )
    return Actor(principal=principal, context=context)


async def tenant_rules(*, session: AsyncSession, tenant_id: UUID) -> list[Rule]:
    """The tenant's role rules, in order, as :func:`decide_role` takes them."""
    rows = await session.scalars(
        select(SsoRoleRule)
        .where(SsoRoleRule.tenant_id == tenant_id)
        .order_by(SsoRoleRule.position, SsoRoleRule.id)
    )
    return [
        Rule(
            id=row.id,
            position=row.position,
            group=row.group,
            role=row.role,
            provider_id=row.provider_id,
        )
        for row in rows
    ]


def _decision_details(decision: RoleDecision) -> dict[str, Any]:
    rule = decision.rule
    return {
        "role": decision.role,
        "source": decision.source,
        "rule_id": str(rule.id) if rule else None,
        "rule_group": rule.group if rule else None,
        "rule_position": rule.position if rule else None,
    }


async def _refuse(
    session: AsyncSession,
    *,
    provider: LoginProvider,
    actor: Actor,
    reason: str,
    code: str,
    resource_id: UUID | None,
    details: dict[str, Any] | None = None,
) -> SsoRefused:
    await audit(
        session,
        actor=actor,
        action="sso.refused",
        resource_type="sso_provider",
        resource_id=provider.id,
        outcome="denied",
        details={
            "provider": provider.name,
            "reason": code,
            "member_id": str(resource_id) if resource_id else None,
            **(details or {}),
        },
    )
    return SsoRefused(reason, code=code)


async def _find_member(
    session: AsyncSession, *, provider: LoginProvider, identity: ExternalIdentity, email: str
) -> tuple[SsoIdentity | None, Profile | None, User | None, str | None]:
    """The identity link, member and user a sign-in is about; or why it must be refused."""
    link = await session.scalar(
        select(SsoIdentity).where(
            SsoIdentity.provider_id == provider.id, SsoIdentity.subject == identity.subject
        )
    )
    if link is not None:
        profile = await session.get(Profile, link.profile_id)
        user = await session.get(User, link.profile_id)
        if profile is not None and user is not None and profile.tenant_id == provider.tenant_id:
            return link, profile, user, None
        return None, None, None, "another_tenant"
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        return None, None, None, None
    profile = await session.get(Profile, user.id)
    if profile is None or profile.tenant_id != provider.tenant_id:
        return None, None, None, "another_tenant"
    if not identity.email_verified:
        return None, profile, user, "unverified_email"
    return None, profile, user, None


async def provision(
    *,
    session: AsyncSession,
    provider: LoginProvider,
    identity: ExternalIdentity,
    context: RequestContext,
    settings: Settings,
) -> OpenedSession | SsoRefused:
    """Sign in the person ``provider`` vouched for: decide their role from the tenant's rules,
    find or create their member in the provider's tenant, link the identity, apply a changed
    role (audit ``sso.role_change``), open a session and audit ``sso.login``.

    Runs in a system session. A refusal is *returned*, after it was recorded (audit
    ``sso.refused``, outcome denied) and, for a member whose groups no longer map to a role,
    after their tokens were revoked and their account disabled (``sso_no_role``): the caller
    commits these writes, then raises it.
    """
    tenant = await session.get(Tenant, provider.tenant_id)
    if tenant is None:
        raise NotFound("this sign-in provider does not exist or is turned off")
    team = tenant.name or "this team"
    email = normalise_email(identity.email)
    decision = decide_role(
        groups=identity.groups,
        rules=await tenant_rules(session=session, tenant_id=tenant.id),
        default_role=tenant.sso_default_role,
        provider_id=provider.id,
    )
    groups = sorted(set(identity.groups))
    seen: dict[str, Any] = {
        "provider": provider.name,
        "subject": identity.subject,
        "groups": groups,
    }
    outsider = _outsider(provider, email=email, context=context)

    if not email:
        return await _refuse(
            session,
            provider=provider,
            actor=outsider,
            reason=f"{provider.name} did not say which e-mail address you have, so you cannot "
            "be signed in; ask your identity provider's administrator to release the e-mail",
            code="no_email",
            resource_id=None,
            details=seen,
        )
    link, profile, user, problem = await _find_member(
        session, provider=provider, identity=identity, email=email
    )
    if problem == "another_tenant":
        return await _refuse(
            session,
            provider=provider,
            actor=outsider,
            reason=f"the e-mail {email} already belongs to an account of another team on this "
            f"server, so {provider.name} cannot sign it in to {team}",
            code="email_of_another_team",
            resource_id=None,
            details=seen,
        )
    if problem == "unverified_email":
        assert profile is not None
        return await _refuse(
            session,
            provider=provider,
            actor=_member(profile, email=email, context=context),
            reason=f"{team} already has a member with the e-mail {email}, and {provider.name} "
            "has not verified that this address is yours, so the two cannot be linked",
            code="unverified_email",
            resource_id=profile.id,
            details=seen,
        )

    if profile is None or user is None:
        # Nobody has this address: a new member, if the mapping gives them a role.
        if decision.role is None:
            return await _refuse(
                session,
                provider=provider,
                actor=outsider,
                reason=_no_role_reason(identity, team=team),
                code="no_role",
                resource_id=None,
                details=seen,
            )
        user_id = uuid4()
        session.add(
            User(
                id=user_id,
                email=email,
                encrypted_password=SSO_PASSWORD_HASH,
                full_name=identity.name,
            )
        )
        await session.flush()
        profile = Profile(
            id=user_id, tenant_id=tenant.id, role=decision.role, tenant_name=tenant.name
        )
        session.add(profile)
        await session.flush()
        user = await session.get(User, user_id)
        assert user is not None
        created = True
    else:
        created = False

    if link is None:
        link = SsoIdentity(
            tenant_id=tenant.id,
            provider_id=provider.id,
            subject=identity.subject,
            profile_id=profile.id,
        )
        session.add(link)
    link.groups = groups
    link.role_rule_id = decision.rule.id if decision.rule else None
    link.role_source = decision.source
    await session.flush()

    actor = _member(profile, email=user.email, context=context)
    if user.is_disabled and user.disabled_reason != "sso_no_role":
        return await _refuse(
            session,
            provider=provider,
            actor=actor,
            reason=f"your account in {team} has been deactivated by an admin; ask them to "
            "reactivate it",
            code="account_disabled",
            resource_id=profile.id,
            details=seen,
        )
    break_glass = tenant.sso_break_glass_profile_id == profile.id
    settled = await settle_member(
        session=session, profile=profile, user=user, role=decision.role, break_glass=break_glass
    )
    if decision.role is None:
        details: dict[str, Any] = dict(seen)
        if settled.disabled:
            details["tokens_revoked"] = settled.tokens_revoked
        return await _refuse(
            session,
            provider=provider,
            actor=actor,
            reason=_no_role_reason(identity, team=team),
            code="no_role",
            resource_id=profile.id,
            details=details,
        )
    reenabled = settled.reenabled
    if settled.role_before is not None:
        await audit(
            session,
            actor=actor,
            action="sso.role_change",
            resource_type="profile",
            resource_id=profile.id,
            details={
                "from": settled.role_before,
                "to": decision.role,
                **_decision_details(decision),
                **seen,
            },
            changes={"role": {"before": settled.role_before, "after": decision.role}},
        )
    link.last_login_at = utcnow()
    await session.flush()
    return await accounts.open_login_session(
        session=session,
        profile=profile,
        email=user.email,
        context=context,
        settings=settings,
        action="sso.login",
        details={
            **seen,
            **_decision_details(decision),
            "role": profile.role,
            "created": created,
            "reenabled": reenabled,
        },
    )


@dataclass(frozen=True)
class Settled:
    """What :func:`settle_member` changed."""

    disabled: bool = False
    tokens_revoked: int = 0
    reenabled: bool = False
    role_before: str | None = None  # the role replaced, when it changed


async def settle_member(
    *, session: AsyncSession, profile: Profile, user: User, role: str | None, break_glass: bool
) -> Settled:
    """Bring a member in line with the role their directory groups give (``role``; None: none),
    at a sign-in or the directory check; the callers audit what changed.

    No role: disabled with every token revoked, so nothing they hold keeps working. A role:
    enabled again if that had disabled them, and the role applied. The break-glass admin is
    never disabled and keeps its role whatever the groups say: it is the way back in. Members an
    admin disabled are the callers' to leave alone.
    """
    if role is None:
        if break_glass:
            return Settled()
        revoked = await accounts.disable_account(
            session=session, user_id=profile.id, reason="sso_no_role"
        )
        return Settled(disabled=True, tokens_revoked=revoked)
    reenabled = False
    if user.is_disabled:  # disabled because their groups had mapped to no role
        await accounts.enable_account(session=session, user_id=profile.id)
        reenabled = True
    role_before = None
    if profile.role != role and not break_glass:
        role_before = profile.role
        profile.role = role
        await session.flush()
    return Settled(reenabled=reenabled, role_before=role_before)


def _no_role_reason(identity: ExternalIdentity, *, team: str) -> str:
    held = ", ".join(sorted(set(identity.groups))) or "none"
    return (
        f"none of your groups gives you a role in {team} (your groups: {held}), and the team "
        "gives no role by default; ask an admin of the team to map one of your groups to a role"
    )


async def record_failure(
    *, session: AsyncSession, provider: LoginProvider, reason: str, context: RequestContext
) -> None:
    """Audit a failed sign-in through ``provider`` (``sso.login``, outcome failure): a bad token,
    a wrong password. ``reason`` is the safe message; no secret goes in."""
    principal = Principal(
        user_id=NOBODY,
        tenant_id=provider.tenant_id,
        role="viewer",
        email=f"sso:{provider.name}",
    )
    await audit(
        session,
        actor=Actor(principal=principal, context=context),
        action="sso.login",
        resource_type="sso_provider",
        resource_id=provider.id,
        outcome="failure",
        details={"provider": provider.name, "kind": provider.kind, "reason": reason},
    )
