"""Single sign-on work that talks to the outside, or glues a sign-in together: the outbound
check of a provider's address before it is saved, "test" (discovery or a service-account bind),
the settings update (its unique slug), and the end of every sign-in (provision, commit, raise).

The network is called outside any transaction; each database step is its own short one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, RequestContext
from shipyard.accounts.service import OpenedSession
from shipyard.errors import Conflict, ProviderError
from shipyard.sso import admin, ldap, oidc, service
from shipyard.sso.identity import ExternalIdentity, SsoFailed, SsoRefused
from shipyard.sso.schemas import (
    ProviderCreate,
    ProviderRead,
    ProviderTestResult,
    ProviderUpdate,
    SsoSettingsRead,
    SsoSettingsUpdate,
)

if TYPE_CHECKING:
    from shipyard.runtime import Runtime


async def check_address(runtime: Runtime, kind: str, config: dict[str, Any]) -> None:
    """A 422 naming the field when the provider's address is refused by the outbound policy."""
    if kind == "oidc":
        await runtime.outbound.validate_url(str(config["issuer"]), field="config.issuer")
        if config.get("graph_url"):
            await runtime.outbound.validate_url(str(config["graph_url"]), field="config.graph_url")
    else:
        host = urlsplit(str(config["url"])).hostname or ""
        await runtime.outbound.validate_host(host, field="config.url")


async def create_provider(*, runtime: Runtime, actor: Actor, data: ProviderCreate) -> ProviderRead:
    """Check the config and its address, then save the provider."""
    config = admin.parse_config(data.kind, data.config)
    await check_address(runtime, data.kind, config)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await admin.create_provider(session=session, actor=actor, data=data, config=config)


async def update_provider(
    *, runtime: Runtime, actor: Actor, provider_id: UUID, data: ProviderUpdate
) -> ProviderRead:
    """Change the fields sent; a changed config is checked (its address too) first."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        kind, config = await admin.merged_config(
            session=session, provider_id=provider_id, data=data
        )
    if config is not None:
        await check_address(runtime, kind, config)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await admin.update_provider(
            session=session, actor=actor, provider_id=provider_id, data=data, config=config
        )


async def probe(runtime: Runtime, *, kind: str, config: dict[str, Any], secret: str | None) -> str:
    """Ask the provider what it is (OIDC discovery and keys; an LDAP service-account bind)."""
    settings = admin.protocol_config(kind, config)
    if isinstance(settings, oidc.OidcConfig):
        return await oidc.check(runtime.http, settings)
    return await ldap.check(settings, bind_password=secret, policy=runtime.outbound)


async def test_provider(*, runtime: Runtime, actor: Actor, provider_id: UUID) -> ProviderTestResult:
    """Call the provider as a sign-in would, with no transaction open; audit what it found.

    Raises :class:`ProviderError` (502) with the reason when it fails (the request's failure
    entry records it); an outbound refusal stays a 422.
    """
    actor.require(Permission.MANAGE_SSO)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        provider = await admin.provider_for_test(session=session, provider_id=provider_id)
        kind, config, secret = provider.kind, dict(provider.config), provider.secret
    try:
        message = await probe(runtime, kind=kind, config=config, secret=secret)
    except SsoFailed as exc:
        # The request's failure entry (shipyard.audit.requests) records it, with the reason.
        raise ProviderError(exc.message, code="sso_provider_failed") from None
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        await admin.record_test(
            session=session, actor=actor, provider_id=provider_id, ok=True, message=message
        )
    return ProviderTestResult(ok=True, message=message)


async def update_settings(
    *, runtime: Runtime, actor: Actor, data: SsoSettingsUpdate
) -> SsoSettingsRead:
    """Change the log-in policy; a slug another team has is a 409."""
    try:
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            return await admin.update_settings(
                session=session, actor=actor, data=data, settings=runtime.settings
            )
    except IntegrityError as exc:
        if "login_slug" not in str(exc.orig):
            raise
        raise Conflict(
            f"the log-in URL '{data.login_slug}' is taken: choose another",
            code="slug_taken",
            details={"field": "login_slug"},
        ) from None


async def sign_in(
    *,
    runtime: Runtime,
    provider: service.LoginProvider,
    identity: ExternalIdentity,
    context: RequestContext,
) -> OpenedSession:
    """The end of every sign-in: :func:`service.provision` in one system transaction, committed,
    then its refusal raised (:class:`SsoRefused`, 403) or its session returned."""
    async with runtime.db.session(system=True) as session:
        outcome = await service.provision(
            session=session,
            provider=provider,
            identity=identity,
            context=context,
            settings=runtime.settings,
        )
    if isinstance(outcome, SsoRefused):
        raise outcome
    return outcome
