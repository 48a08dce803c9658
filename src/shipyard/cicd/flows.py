"""CI/CD actions that talk to the provider: never inside a database transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor, Principal
from shipyard.cicd import actions, service
from shipyard.cicd.connection import effective_url, open_client
from shipyard.cicd.schemas import ProviderCheck, ProviderCreate, ProviderRead, ProviderUpdate
from shipyard.outbound.errors import UpstreamError

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

PAGE_LIMIT = 200


async def create_provider(*, runtime: Runtime, actor: Actor, data: ProviderCreate) -> ProviderRead:
    """Connect a provider; its URL passes the outbound policy (a DNS lookup) before the
    transaction that stores it opens."""
    await runtime.outbound.validate_url(effective_url(data.type, data.url), field="url")
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await actions.create_provider(session=session, actor=actor, data=data)


async def update_provider(
    *, runtime: Runtime, actor: Actor, provider_id: UUID, data: ProviderUpdate
) -> ProviderRead:
    """Change a provider; a new URL passes the outbound policy before any write."""
    if "url" in data.model_fields_set:
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            provider = await service.get_provider(
                session=session, principal=actor.principal, provider_id=provider_id
            )
            kind = provider.type
        await runtime.outbound.validate_url(effective_url(kind, data.url), field="url")
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await actions.update_provider(
            session=session, actor=actor, provider_id=provider_id, data=data
        )


async def check_provider(*, runtime: Runtime, actor: Actor, provider_id: UUID) -> ProviderCheck:
    """Reach the provider with its credentials; ``ok`` is False, with its reason, when it fails.

    The provider and its credentials are read in a short transaction; the call itself runs with
    none open, so a provider that takes its time holds no pooled connection.
    """
    settings = runtime.settings
    # A person is waiting: retry briefly rather than for the whole background budget.
    quick = settings.model_copy(
        update={"cicd_retry_seconds": min(settings.cicd_retry_seconds, settings.http_timeout)}
    )
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        provider = await service.get_provider(
            session=session, principal=actor.principal, provider_id=provider_id
        )
        client = await open_client(session, provider, http=runtime.http, settings=quick)
    try:
        message = await client.check()
    except UpstreamError as exc:
        # The test's answer is the diagnosis: a refused token or an outage is "not ok", with the
        # provider's reason, never an error of ours (and never a 5xx for a refusal).
        return ProviderCheck(ok=False, message=exc.message, code=exc.code)
    return ProviderCheck(ok=True, message=message)


async def read_providers(*, runtime: Runtime, principal: Principal) -> list[ProviderRead]:
    """The tenant's providers (the first 200), in a short transaction of their own.

    For a page that ran :func:`check_provider` and shows the list again afterwards.
    """
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        providers, _ = await service.list_providers(
            session=session, principal=principal, limit=PAGE_LIMIT, cursor=None
        )
        return await service.read_providers(session=session, providers=providers)
