"""Helpers of the SSO core tests: providers and rules written directly, and sign-ins through
:func:`shipyard.sso.service.provision` with an identity (the protocols are tested elsewhere)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select, update

from shipyard.accounts.models import AuditEvent, Tenant
from shipyard.accounts.principal import RequestContext
from shipyard.accounts.service import OpenedSession
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.sso import service
from shipyard.sso.identity import ExternalIdentity, SsoRefused
from shipyard.sso.models import SsoProvider, SsoRoleRule

CONTEXT = RequestContext(ip_address="127.0.0.1", user_agent="pytest", request_id="sso-test")


async def add_provider(
    db: Database,
    tenant_id: str,
    *,
    name: str = "Corp IdP",
    kind: str = "oidc",
    enabled: bool = True,
) -> UUID:
    config: dict[str, Any] = (
        {"issuer": "https://idp.example.com", "client_id": "shipyard"}
        if kind == "oidc"
        else {
            "url": "ldap://127.0.0.1:389",
            "bind_dn": "cn=svc,dc=example,dc=com",
            "user_base": "ou=people,dc=example,dc=com",
        }
    )
    async with db.session(system=True) as session:
        provider = SsoProvider(
            tenant_id=UUID(tenant_id), kind=kind, name=name, enabled=enabled, config=config
        )
        session.add(provider)
        await session.flush()
        return provider.id


async def add_rule(
    db: Database,
    tenant_id: str,
    *,
    group: str,
    role: str,
    position: int,
    provider_id: UUID | None = None,
) -> UUID:
    async with db.session(system=True) as session:
        rule = SsoRoleRule(
            tenant_id=UUID(tenant_id),
            group=group,
            role=role,
            position=position,
            provider_id=provider_id,
        )
        session.add(rule)
        await session.flush()
        return rule.id


async def set_policy(db: Database, tenant_id: str, **values: Any) -> None:
    async with db.session(system=True) as session:
        await session.execute(update(Tenant).where(Tenant.id == UUID(tenant_id)).values(**values))


async def sign_in(
    db: Database,
    settings: Settings,
    provider_id: UUID,
    *,
    subject: str,
    email: str,
    groups: tuple[str, ...] = (),
    name: str | None = "Sam Sso",
) -> OpenedSession | SsoRefused:
    """What an OIDC or LDAP sign-in does once the provider vouched for the person."""
    async with db.session(system=True) as session:
        provider = await service.login_provider(session=session, provider_id=provider_id)
        return await service.provision(
            session=session,
            provider=provider,
            identity=ExternalIdentity(subject=subject, email=email, name=name, groups=groups),
            context=CONTEXT,
            settings=settings,
        )


async def signed_in(
    db: Database, settings: Settings, provider_id: UUID, **identity: Any
) -> OpenedSession:
    outcome = await sign_in(db, settings, provider_id, **identity)
    assert isinstance(outcome, OpenedSession), outcome
    return outcome


async def refused(db: Database, settings: Settings, provider_id: UUID, **identity: Any) -> str:
    outcome = await sign_in(db, settings, provider_id, **identity)
    assert isinstance(outcome, SsoRefused), outcome
    assert outcome.status_code == 403
    return outcome.message


async def entries(db: Database, tenant_id: str, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == UUID(tenant_id), AuditEvent.action == action)
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
        return list(rows)
