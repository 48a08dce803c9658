"""What a person does to CI/CD providers: connect, change, remove, sync now; each audited.

Service functions (a session, never the network), one per action, called alike by the API and
the web routes. The connection test talks to the provider, so it is a flow
(:func:`shipyard.cicd.flows.check_provider`).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.cicd import service
from shipyard.cicd.connection import build_config, effective_url
from shipyard.cicd.models import CicdProvider
from shipyard.cicd.schemas import ProviderCreate, ProviderRead, ProviderUpdate, SyncQueued
from shipyard.cicd.sync import enqueue_sync
from shipyard.db import session_keyring


async def _read(session: AsyncSession, provider: CicdProvider) -> ProviderRead:
    return (await service.read_providers(session, [provider]))[0]


async def create_provider(
    *, session: AsyncSession, actor: Actor, data: ProviderCreate
) -> ProviderRead:
    """Connect Jenkins, GitHub Actions or CircleCI; credentials are stored sealed."""
    url = effective_url(data.type, data.url)
    config = build_config(data.type, data.config, keyring=session_keyring(session))
    await service.check_linked_git_provider(session, actor.principal, config)
    provider = CicdProvider(
        tenant_id=actor.tenant_id,
        type=data.type,
        name=data.name,
        url=url,
        config=config,
        profile_id=actor.user_id,
    )
    session.add(provider)
    await session.flush()
    await session.refresh(provider)
    await audit(
        session,
        actor=actor,
        action="cicd_provider.create",
        resource_type="cicd_provider",
        resource_id=provider.id,
        details={"name": provider.name, "type": provider.type, "url": provider.url},
    )
    return await _read(session, provider)


async def update_provider(
    *, session: AsyncSession, actor: Actor, provider_id: UUID, data: ProviderUpdate
) -> ProviderRead:
    """Rename, move, or change settings; a credential left out keeps its stored value."""
    provider = await service.get_provider(
        session=session, principal=actor.principal, provider_id=provider_id
    )
    changed: list[str] = []
    if data.name is not None:
        provider.name = data.name
        changed.append("name")
    if "url" in data.model_fields_set:
        provider.url = effective_url(provider.type, data.url)
        changed.append("url")
    if data.config is not None:
        config = build_config(
            provider.type, data.config, provider.config, keyring=session_keyring(session)
        )
        await service.check_linked_git_provider(session, actor.principal, config)
        provider.config = config
        changed.extend(f"config.{key}" for key in sorted(data.config))
    await session.flush()
    await session.refresh(provider)
    await audit(
        session,
        actor=actor,
        action="cicd_provider.update",
        resource_type="cicd_provider",
        resource_id=provider.id,
        details={"changed": changed},
    )
    return await _read(session, provider)


async def delete_provider(*, session: AsyncSession, actor: Actor, provider_id: UUID) -> None:
    """Remove the provider and its jobs; steps that used them keep their history."""
    provider = await service.get_provider(
        session=session, principal=actor.principal, provider_id=provider_id
    )
    await session.delete(provider)
    await audit(
        session,
        actor=actor,
        action="cicd_provider.delete",
        resource_type="cicd_provider",
        resource_id=provider_id,
        details={"name": provider.name, "type": provider.type},
    )


async def request_sync(*, session: AsyncSession, actor: Actor, provider_id: UUID) -> SyncQueued:
    """Queue a refresh of the job catalogue; ``already_queued`` when one is waiting."""
    provider = await service.get_provider(
        session=session, principal=actor.principal, provider_id=provider_id
    )
    job_id = await enqueue_sync(session, provider_id=provider.id, tenant_id=actor.tenant_id)
    await audit(
        session,
        actor=actor,
        action="cicd_provider.sync",
        resource_type="cicd_provider",
        resource_id=provider.id,
    )
    return SyncQueued(status="queued" if job_id else "already_queued", job_id=job_id)
