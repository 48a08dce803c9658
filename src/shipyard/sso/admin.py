"""Single sign-on settings in the database, the admins' actions: providers, the ordered role
rules, the tenant's log-in policy, and the explanation of a member's role.

A session, never the network: :mod:`shipyard.sso.flows` checks addresses against the outbound
policy before calling these. Each write action checks ``MANAGE_SSO`` and writes its audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.models import Profile, Tenant, User
from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.accounts.service import login_url
from shipyard.config import Settings
from shipyard.db import tenant_clause
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.sso import ldap, oidc
from shipyard.sso.models import SsoIdentity, SsoProvider, SsoRoleRule
from shipyard.sso.schemas import (
    SETTINGS_OF_KIND,
    IdentityRead,
    MemberSso,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    RuleCreate,
    RuleOrder,
    RuleRead,
    RuleRef,
    RuleUpdate,
    SsoSettingsRead,
    SsoSettingsUpdate,
)

REDIRECT_PATH = "/login/oidc/callback"


def redirect_uri(settings: Settings) -> str:
    """The one redirect URL every OIDC provider is registered with (``state`` says which)."""
    return settings.base_url.rstrip("/") + REDIRECT_PATH


def login_path(provider_id: UUID, kind: str) -> str:
    return f"/login/{kind}/{provider_id}"


# --- providers ---------------------------------------------------------------------------------


def parse_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` checked and completed for ``kind``; a 422 naming ``config.<field>``."""
    try:
        parsed = SETTINGS_OF_KIND[kind].model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        field = f"config.{where}" if where else "config"
        raise ValidationFailed(f"{field}: {message}", field=field) from exc
    document = parsed.model_dump(mode="json")
    # The protocol's own reading too: it refuses what the schema lets through but cannot work
    # (an unbalanced LDAP filter, an attribute name with spaces, a PEM that does not load), so
    # such a provider is never saved only to fail every sign-in.
    protocol_config(kind, document)
    return document


def protocol_config(kind: str, config: dict[str, Any]) -> oidc.OidcConfig | ldap.LdapConfig:
    """``config`` as the protocol reads it; a 422 naming ``config.<field>`` when it cannot."""
    try:
        if kind == "oidc":
            return oidc.OidcConfig.from_config(config)
        return ldap.LdapConfig.from_config(config)
    except ldap.LdapConfigError as exc:
        field = f"config.{exc.field}"
        raise ValidationFailed(f"{field}: {exc.message}", field=field) from None
    except ValidationFailed as exc:
        fields = [item.get("field") for item in exc.details.get("errors", [])]
        field = f"config.{fields[0]}" if fields and fields[0] else "config"
        raise ValidationFailed(f"config: {exc.message}", field=field) from None


def provider_read(provider: SsoProvider) -> ProviderRead:
    return ProviderRead(
        id=provider.id,
        kind=provider.kind,
        name=provider.name,
        enabled=provider.enabled,
        config=dict(provider.config),
        has_secret=provider.secret is not None,
        login_path=login_path(provider.id, provider.kind),
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


async def _provider(session: AsyncSession, provider_id: UUID) -> SsoProvider:
    provider = await session.scalar(
        select(SsoProvider).where(
            SsoProvider.id == provider_id, tenant_clause(session, SsoProvider.tenant_id)
        )
    )
    if provider is None:
        raise NotFound("identity provider not found")
    return provider


async def _name_free(
    session: AsyncSession, *, tenant_id: UUID, name: str, but: UUID | None = None
) -> None:
    query = select(SsoProvider.id).where(
        SsoProvider.tenant_id == tenant_id, func.lower(SsoProvider.name) == name.lower()
    )
    if but is not None:
        query = query.where(SsoProvider.id != but)
    if await session.scalar(query) is not None:
        raise Conflict(
            f"an identity provider named '{name}' already exists",
            code="name_taken",
            details={"field": "name"},
        )


async def list_providers(*, session: AsyncSession) -> list[ProviderRead]:
    rows = await session.scalars(
        select(SsoProvider)
        .where(tenant_clause(session, SsoProvider.tenant_id))
        .order_by(SsoProvider.created_at, SsoProvider.id)
    )
    return [provider_read(row) for row in rows]


async def get_provider(*, session: AsyncSession, provider_id: UUID) -> ProviderRead:
    return provider_read(await _provider(session, provider_id))


async def provider_for_test(*, session: AsyncSession, provider_id: UUID) -> SsoProvider:
    """The provider (its secret decrypted), for the test flow to call it."""
    return await _provider(session, provider_id)


async def create_provider(
    *, session: AsyncSession, actor: Actor, data: ProviderCreate, config: dict[str, Any]
) -> ProviderRead:
    """Save a provider (``config`` parsed, its addresses checked by the flow); audit
    ``sso.provider.create``."""
    actor.require(Permission.MANAGE_SSO)
    await _name_free(session, tenant_id=actor.tenant_id, name=data.name)
    provider = SsoProvider(
        tenant_id=actor.tenant_id,
        kind=data.kind,
        name=data.name,
        enabled=data.enabled,
        config=config,
        secret=data.secret,
        created_by=actor.user_id,
    )
    session.add(provider)
    await session.flush()
    await session.refresh(provider)
    await audit(
        session,
        actor=actor,
        action="sso.provider.create",
        resource_type="sso_provider",
        resource_id=provider.id,
        details={"name": data.name, "kind": data.kind, "has_secret": data.secret is not None},
    )
    return provider_read(provider)


async def merged_config(
    *, session: AsyncSession, provider_id: UUID, data: ProviderUpdate
) -> tuple[str, dict[str, Any] | None]:
    """The provider's kind, and its config with ``data.config`` applied and parsed (None:
    unchanged)."""
    provider = await _provider(session, provider_id)
    if data.config is None:
        return provider.kind, None
    return provider.kind, parse_config(provider.kind, {**provider.config, **data.config})


async def _refuse_losing_last_provider(
    session: AsyncSession, *, tenant_id: UUID, provider_id: UUID
) -> None:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None or not tenant.sso_required:
        return
    others = await session.scalar(
        select(func.count())
        .select_from(SsoProvider)
        .where(
            SsoProvider.tenant_id == tenant_id,
            SsoProvider.enabled.is_(True),
            SsoProvider.id != provider_id,
        )
    )
    if not others:
        raise Conflict(
            "the team requires single sign-on and this is its last enabled identity provider: "
            "turn sso_required off first",
            code="last_provider",
        )


async def update_provider(
    *,
    session: AsyncSession,
    actor: Actor,
    provider_id: UUID,
    data: ProviderUpdate,
    config: dict[str, Any] | None,
) -> ProviderRead:
    """Change the fields sent (the secret only when sent or cleared); audit
    ``sso.provider.update`` naming the fields."""
    actor.require(Permission.MANAGE_SSO)
    provider = await _provider(session, provider_id)
    fields: list[str] = []
    if data.name is not None and data.name != provider.name:
        await _name_free(session, tenant_id=actor.tenant_id, name=data.name, but=provider.id)
        provider.name = data.name
        fields.append("name")
    if data.enabled is not None and data.enabled != provider.enabled:
        if not data.enabled:
            await _refuse_losing_last_provider(
                session, tenant_id=actor.tenant_id, provider_id=provider.id
            )
        provider.enabled = data.enabled
        fields.append("enabled")
    if config is not None and config != provider.config:
        provider.config = config
        fields.append("config")
    if data.secret is not None:
        provider.secret = data.secret
        fields.append("secret")
    elif data.clear_secret and provider.secret is not None:
        provider.secret = None
        fields.append("secret")
    await session.flush()
    await session.refresh(provider)
    await audit(
        session,
        actor=actor,
        action="sso.provider.update",
        resource_type="sso_provider",
        resource_id=provider.id,
        details={"fields": fields},
    )
    return provider_read(provider)


async def delete_provider(*, session: AsyncSession, actor: Actor, provider_id: UUID) -> None:
    """Delete a provider, its identities (members keep their accounts) and its own rules;
    audit ``sso.provider.delete``."""
    actor.require(Permission.MANAGE_SSO)
    provider = await _provider(session, provider_id)
    if provider.enabled:
        await _refuse_losing_last_provider(
            session, tenant_id=actor.tenant_id, provider_id=provider.id
        )
    name = provider.name
    await session.delete(provider)
    await session.flush()
    await _renumber(session, tenant_id=actor.tenant_id)
    await audit(
        session,
        actor=actor,
        action="sso.provider.delete",
        resource_type="sso_provider",
        resource_id=provider_id,
        details={"name": name},
    )


async def record_test(
    *, session: AsyncSession, actor: Actor, provider_id: UUID, ok: bool, message: str
) -> None:
    """Audit ``sso.provider.test`` with what the test found."""
    await audit(
        session,
        actor=actor,
        action="sso.provider.test",
        resource_type="sso_provider",
        resource_id=provider_id,
        details={"ok": ok, "message": message[:500]},
        outcome="success" if ok else "failure",
    )


# --- role rules --------------------------------------------------------------------------------


def rule_read(rule: SsoRoleRule) -> RuleRead:
    return RuleRead(
        id=rule.id,
        position=rule.position,
        group=rule.group,
        role=rule.role,
        provider_id=rule.provider_id,
    )


async def _rules(session: AsyncSession, *, tenant_id: UUID) -> list[SsoRoleRule]:
    rows = await session.scalars(
        select(SsoRoleRule)
        .where(SsoRoleRule.tenant_id == tenant_id)
        .order_by(SsoRoleRule.position, SsoRoleRule.created_at, SsoRoleRule.id)
    )
    return list(rows)


async def _renumber(
    session: AsyncSession, *, tenant_id: UUID, ordered: list[SsoRoleRule] | None = None
) -> list[SsoRoleRule]:
    rules = ordered if ordered is not None else await _rules(session, tenant_id=tenant_id)
    for position, rule in enumerate(rules):
        if rule.position != position:
            rule.position = position
    await session.flush()
    return rules


async def _rule(session: AsyncSession, rule_id: UUID) -> SsoRoleRule:
    rule = await session.scalar(
        select(SsoRoleRule).where(
            SsoRoleRule.id == rule_id, tenant_clause(session, SsoRoleRule.tenant_id)
        )
    )
    if rule is None:
        raise NotFound("role rule not found")
    return rule


async def _check_rule_provider(session: AsyncSession, provider_id: UUID | None) -> None:
    if provider_id is None:
        return
    found = await session.scalar(
        select(SsoProvider.id).where(
            SsoProvider.id == provider_id, tenant_clause(session, SsoProvider.tenant_id)
        )
    )
    if found is None:
        raise ValidationFailed("no identity provider of the team has this id", field="provider_id")


async def list_rules(*, session: AsyncSession, tenant_id: UUID) -> list[RuleRead]:
    return [rule_read(rule) for rule in await _rules(session, tenant_id=tenant_id)]


async def create_rule(*, session: AsyncSession, actor: Actor, data: RuleCreate) -> RuleRead:
    """Add a rule at ``position`` (default: last); audit ``sso.rule.create``."""
    actor.require(Permission.MANAGE_SSO)
    await _check_rule_provider(session, data.provider_id)
    rules = await _rules(session, tenant_id=actor.tenant_id)
    if len(rules) >= 500:
        raise ValidationFailed("a team has at most 500 role rules", field="group")
    rule = SsoRoleRule(
        tenant_id=actor.tenant_id,
        position=len(rules),
        group=data.group,
        role=data.role,
        provider_id=data.provider_id,
    )
    session.add(rule)
    at = len(rules) if data.position is None else min(data.position, len(rules))
    rules.insert(at, rule)
    await _renumber(session, tenant_id=actor.tenant_id, ordered=rules)
    await audit(
        session,
        actor=actor,
        action="sso.rule.create",
        resource_type="sso_role_rule",
        resource_id=rule.id,
        details={"group": data.group, "role": data.role, "position": rule.position},
    )
    return rule_read(rule)


async def update_rule(
    *, session: AsyncSession, actor: Actor, rule_id: UUID, data: RuleUpdate
) -> RuleRead:
    """Change a rule's group, role or provider (``provider_id: null``: every provider); audit
    ``sso.rule.update``."""
    actor.require(Permission.MANAGE_SSO)
    rule = await _rule(session, rule_id)
    fields: list[str] = []
    if data.group is not None and data.group != rule.group:
        rule.group = data.group
        fields.append("group")
    if data.role is not None and data.role != rule.role:
        rule.role = data.role
        fields.append("role")
    if "provider_id" in data.model_fields_set and data.provider_id != rule.provider_id:
        await _check_rule_provider(session, data.provider_id)
        rule.provider_id = data.provider_id
        fields.append("provider_id")
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="sso.rule.update",
        resource_type="sso_role_rule",
        resource_id=rule.id,
        details={"fields": fields},
    )
    return rule_read(rule)


async def delete_rule(*, session: AsyncSession, actor: Actor, rule_id: UUID) -> None:
    """Delete a rule and close the gap; audit ``sso.rule.delete``."""
    actor.require(Permission.MANAGE_SSO)
    rule = await _rule(session, rule_id)
    details = {"group": rule.group, "role": rule.role}
    await session.delete(rule)
    await session.flush()
    await _renumber(session, tenant_id=actor.tenant_id)
    await audit(
        session,
        actor=actor,
        action="sso.rule.delete",
        resource_type="sso_role_rule",
        resource_id=rule_id,
        details=details,
    )


async def order_rules(*, session: AsyncSession, actor: Actor, data: RuleOrder) -> list[RuleRead]:
    """Put the rules in the order of ``data.ids`` (every rule's id, once); audit
    ``sso.rule.order``."""
    actor.require(Permission.MANAGE_SSO)
    rules = await _rules(session, tenant_id=actor.tenant_id)
    by_id = {rule.id: rule for rule in rules}
    if len(set(data.ids)) != len(data.ids) or set(data.ids) != set(by_id):
        raise ValidationFailed(
            "ids must list every role rule of the team exactly once", field="ids"
        )
    ordered = [by_id[rule_id] for rule_id in data.ids]
    await _renumber(session, tenant_id=actor.tenant_id, ordered=ordered)
    await audit(
        session,
        actor=actor,
        action="sso.rule.order",
        resource_type="tenant",
        resource_id=actor.tenant_id,
        details={"ids": [str(rule_id) for rule_id in data.ids]},
    )
    return [rule_read(rule) for rule in ordered]


async def move_rule(
    *, session: AsyncSession, actor: Actor, rule_id: UUID, offset: int
) -> list[RuleRead]:
    """Move a rule ``offset`` places (-1: up, 1: down), as :func:`order_rules` does."""
    rules = await _rules(session, tenant_id=actor.tenant_id)
    ids = [rule.id for rule in rules]
    if rule_id not in ids:
        raise NotFound("role rule not found")
    at = ids.index(rule_id)
    to = max(0, min(len(ids) - 1, at + offset))
    ids.insert(to, ids.pop(at))
    return await order_rules(session=session, actor=actor, data=RuleOrder(ids=ids))


# --- policy ------------------------------------------------------------------------------------


def settings_read(tenant: Tenant, *, settings: Settings) -> SsoSettingsRead:
    return SsoSettingsRead(
        login_slug=tenant.login_slug,
        login_url=login_url(tenant=tenant, settings=settings),
        default_role=tenant.sso_default_role,
        sso_required=tenant.sso_required,
        break_glass_member_id=tenant.sso_break_glass_profile_id,
        redirect_uri=redirect_uri(settings),
    )


async def _tenant(session: AsyncSession, principal: Principal) -> Tenant:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def get_settings(
    *, session: AsyncSession, principal: Principal, settings: Settings
) -> SsoSettingsRead:
    return settings_read(await _tenant(session, principal), settings=settings)


async def _enabled_providers(session: AsyncSession, tenant_id: UUID) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(SsoProvider)
            .where(SsoProvider.tenant_id == tenant_id, SsoProvider.enabled.is_(True))
        )
        or 0
    )


async def update_settings(
    *, session: AsyncSession, actor: Actor, data: SsoSettingsUpdate, settings: Settings
) -> SsoSettingsRead:
    """Change the log-in policy fields sent; audit ``sso.settings.update``.

    Requiring SSO needs an enabled provider and a break-glass admin; the break-glass member
    must be an admin of the team; a slug is unique on the server (the unique index: the flow
    turns its violation into a 409).
    """
    actor.require(Permission.MANAGE_SSO)
    tenant = await _tenant(session, actor.principal)
    sent = data.model_fields_set
    fields: list[str] = []
    if "login_slug" in sent and data.login_slug != tenant.login_slug:
        tenant.login_slug = data.login_slug
        fields.append("login_slug")
    if "default_role" in sent and data.default_role != tenant.sso_default_role:
        tenant.sso_default_role = data.default_role
        fields.append("default_role")
    if "break_glass_member_id" in sent and (
        data.break_glass_member_id != tenant.sso_break_glass_profile_id
    ):
        if data.break_glass_member_id is not None:
            role = await session.scalar(
                select(Profile.role).where(
                    Profile.id == data.break_glass_member_id, Profile.tenant_id == tenant.id
                )
            )
            if role != "admin":
                raise ValidationFailed(
                    "the break-glass account must be an admin of the team",
                    field="break_glass_member_id",
                )
        tenant.sso_break_glass_profile_id = data.break_glass_member_id
        fields.append("break_glass_member_id")
    if (
        "sso_required" in sent
        and data.sso_required is not None
        and data.sso_required != tenant.sso_required
    ):
        tenant.sso_required = data.sso_required
        fields.append("sso_required")
    if tenant.sso_required and ("sso_required" in fields or "break_glass_member_id" in fields):
        if not await _enabled_providers(session, tenant.id):
            raise ValidationFailed(
                "requiring single sign-on needs at least one enabled identity provider: "
                "add one first",
                field="sso_required",
            )
        if tenant.sso_break_glass_profile_id is None:
            field = "sso_required" if "sso_required" in fields else "break_glass_member_id"
            raise ValidationFailed(
                "requiring single sign-on needs a break-glass admin "
                "(break_glass_member_id), who may still sign in with a password",
                field=field,
            )
    await session.flush()
    await audit(
        session,
        actor=actor,
        action="sso.settings.update",
        resource_type="tenant",
        resource_id=tenant.id,
        details={"fields": fields},
    )
    return settings_read(tenant, settings=settings)


async def tenant_by_slug(*, session: AsyncSession, slug: str) -> UUID | None:
    """The tenant whose log-in URL is ``slug`` (system session: the log-in page is public)."""
    found: UUID | None = await session.scalar(
        select(Tenant.id).where(Tenant.login_slug == slug.lower())
    )
    return found


# --- explanation -------------------------------------------------------------------------------


async def explain_member(*, session: AsyncSession, member_id: UUID) -> MemberSso:
    """A member's identities and which rule (or the default) gave their role at each last
    sign-in."""
    row = (
        await session.execute(
            select(Profile, User)
            .join(User, User.id == Profile.id)
            .where(Profile.id == member_id, tenant_clause(session, Profile.tenant_id))
        )
    ).one_or_none()
    if row is None:
        raise NotFound("member not found")
    profile, user = row
    found = await session.execute(
        select(SsoIdentity, SsoProvider, SsoRoleRule)
        .join(SsoProvider, SsoProvider.id == SsoIdentity.provider_id)
        .outerjoin(SsoRoleRule, SsoRoleRule.id == SsoIdentity.role_rule_id)
        .where(SsoIdentity.profile_id == member_id)
        .order_by(SsoIdentity.last_login_at.desc().nulls_last(), SsoIdentity.id)
    )
    identities = [
        IdentityRead(
            provider_id=provider.id,
            provider_name=provider.name,
            provider_kind=provider.kind,
            subject=identity.subject,
            groups=list(identity.groups),
            last_login_at=identity.last_login_at,
            role_source=identity.role_source,
            rule=RuleRef(
                id=rule.id,
                position=rule.position,
                group=rule.group,
                role=rule.role,
            )
            if rule is not None
            else None,
        )
        for identity, provider, rule in found.all()
    ]
    return MemberSso(
        member_id=profile.id,
        email=user.email,
        role=profile.role,
        is_disabled=user.is_disabled,
        disabled_reason=user.disabled_reason,
        identities=identities,
        explanation=_explanation(profile.role, identities),
    )


def _explanation(role: str, identities: list[IdentityRead]) -> str:
    if not identities:
        return f"{role}: set by an admin (this member has never signed in through SSO)"
    last = identities[0]
    if last.rule is not None:
        return (
            f"{role}: rule #{last.rule.position + 1} (group '{last.rule.group}' -> "
            f"{last.rule.role}) at the last sign-in through {last.provider_name}"
        )
    if last.role_source == "rule":
        return f"{role}: a rule since deleted, at the last sign-in through {last.provider_name}"
    if last.role_source == "default":
        return (
            f"{role}: the team's default role (no rule matched) at the last sign-in through "
            f"{last.provider_name}"
        )
    return f"{role}: no role from the mapping at the last sign-in through {last.provider_name}"


async def sso_sources(*, session: AsyncSession, tenant_id: UUID) -> dict[UUID, str]:
    """For the members page: each SSO member's role source in a few words."""
    found = await session.execute(
        select(SsoIdentity, SsoProvider.name, SsoRoleRule)
        .join(SsoProvider, SsoProvider.id == SsoIdentity.provider_id)
        .outerjoin(SsoRoleRule, SsoRoleRule.id == SsoIdentity.role_rule_id)
        .where(SsoIdentity.tenant_id == tenant_id)
        .order_by(SsoIdentity.last_login_at.asc().nulls_first())
    )
    sources: dict[UUID, str] = {}
    for identity, provider_name, rule in found.all():
        if rule is not None:
            text = f"SSO ({provider_name}): rule #{rule.position + 1} '{rule.group}' -> {rule.role}"
        elif identity.role_source == "default":
            text = f"SSO ({provider_name}): default role"
        else:
            text = f"SSO ({provider_name})"
        sources[identity.profile_id] = text  # the latest sign-in wins
    return sources


# --- public log-in pages (system session: nobody is signed in yet) ------------------------------


@dataclass(frozen=True)
class LoginButton:
    id: UUID
    kind: str
    name: str


@dataclass(frozen=True)
class TenantLogin:
    """What a team's own log-in page shows."""

    tenant_id: UUID
    name: str
    sso_required: bool
    oidc: list[LoginButton]
    ldap: list[LoginButton]


async def tenant_login(
    *, session: AsyncSession, tenant_id: UUID | None = None, slug: str | None = None
) -> TenantLogin:
    """The team's log-in page by its slug or id (NotFound otherwise)."""
    if slug is not None:
        tenant = await session.scalar(select(Tenant).where(Tenant.login_slug == slug.lower()))
    else:
        tenant = await session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant is None:
        raise NotFound("no team has this log-in page")
    providers = list(
        await session.scalars(
            select(SsoProvider)
            .where(SsoProvider.tenant_id == tenant.id, SsoProvider.enabled.is_(True))
            .order_by(SsoProvider.created_at, SsoProvider.id)
        )
    )
    buttons = [LoginButton(id=p.id, kind=p.kind, name=p.name) for p in providers]
    return TenantLogin(
        tenant_id=tenant.id,
        name=tenant.name or "your team",
        sso_required=tenant.sso_required,
        oidc=[button for button in buttons if button.kind == "oidc"],
        ldap=[button for button in buttons if button.kind == "ldap"],
    )


def tenant_login_path(tenant: Tenant) -> str:
    return f"/login/t/{tenant.login_slug}" if tenant.login_slug else f"/login/sso/{tenant.id}"


async def discover_login(*, session: AsyncSession, email: str) -> str | None:
    """The log-in page of the one team whose domain is ``email``'s and which has an enabled
    provider; None when no team or several do (system session)."""
    domain = email.strip().rsplit("@", 1)[-1].lower() if "@" in email else ""
    if not domain:
        return None
    with_provider = select(SsoProvider.tenant_id).where(SsoProvider.enabled.is_(True))
    tenants = list(
        await session.scalars(
            select(Tenant)
            .where(func.lower(func.trim(Tenant.domain)) == domain, Tenant.id.in_(with_provider))
            .limit(2)
        )
    )
    if len(tenants) != 1:
        return None
    return tenant_login_path(tenants[0])
