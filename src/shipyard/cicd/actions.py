"""What a person does to CI/CD providers: connect, change, remove, sync now; each audited.

Service functions (a session, never the network), one per action, called alike by the API and
the web routes. The connection test talks to the provider, so it is a flow
(:func:`shipyard.cicd.flows.check_provider`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.principal import Actor
from shipyard.cicd import service
from shipyard.cicd.connection import (
    borrowed_token_address,
    build_config,
    effective_url,
    same_address,
)
from shipyard.cicd.models import CicdProvider
from shipyard.cicd.schemas import (
    SECRET_FIELDS,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    SyncQueued,
)
from shipyard.cicd.sync import enqueue_sync
from shipyard.db import session_keyring
from shipyard.errors import ValidationFailed
from shipyard.git.models import GitProvider


async def _read(session: AsyncSession, provider: CicdProvider) -> ProviderRead:
    return (await service.read_providers(session=session, providers=[provider]))[0]


async def check_borrowed_token(
    session: AsyncSession, actor: Actor, config: dict[str, Any], url: str
) -> None:
    """A GitHub Actions provider borrowing a git provider's token must call that provider's API.

    Otherwise whoever sets the URL chooses where the git provider's token is sent.
    """
    linked = config.get("git_provider_id")
    if linked is None:
        return
    git_provider = await session.scalar(
        select(GitProvider).where(
            GitProvider.id == UUID(str(linked)), GitProvider.tenant_id == actor.tenant_id
        )
    )
    if git_provider is None:
        return  # check_linked_git_provider names the field
    address = borrowed_token_address(git_provider)
    if not same_address(url, address):
        raise ValidationFailed(
            f"must be {address}: the token borrowed from git provider {linked} is only sent "
            "to that provider's own API (give config.token to use another address)",
            field="url",
            code="borrowed_token_address",
        )


def refuse_kept_credentials(provider: CicdProvider, changes: dict[str, Any]) -> None:
    """A provider that moves to another URL takes no stored credential with it."""
    for key in SECRET_FIELDS.get(provider.type, ()):
        if key in provider.config and key not in changes and "git_provider_id" not in changes:
            raise ValidationFailed(
                f"changing the URL needs the {key} again: stored credentials are only ever "
                "sent to the address they were given for",
                field=f"config.{key}",
                code="credentials_required",
            )


async def create_provider(
    *,
    session: AsyncSession,
    actor: Actor,
    data: ProviderCreate,
) -> ProviderRead:
    """Connect Jenkins, GitHub Actions or CircleCI; credentials are stored sealed.

    Its flow checked the URL against the outbound policy first (a DNS lookup, outside this
    transaction); every call to the provider checks it again when it connects.
    """
    url = effective_url(data.type, data.url)
    config = build_config(data.type, data.config, keyring=session_keyring(session))
    await service.check_linked_git_provider(
        session=session, principal=actor.principal, config=config
    )
    await check_borrowed_token(session, actor, config, url)
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
    *,
    session: AsyncSession,
    actor: Actor,
    provider_id: UUID,
    data: ProviderUpdate,
) -> ProviderRead:
    """Rename, move, or change settings; a credential left out keeps its stored value, unless
    the URL changes: then the credentials come again in the same request."""
    provider = await service.get_provider(
        session=session, principal=actor.principal, provider_id=provider_id
    )
    changed: list[str] = []
    url = effective_url(provider.type, provider.url)
    if "url" in data.model_fields_set:
        new_url = effective_url(provider.type, data.url)
        if not same_address(new_url, url):
            refuse_kept_credentials(provider, data.config or {})
            changed.append("url")
        url = new_url
    config = provider.config
    if data.config is not None:
        config = build_config(
            provider.type, data.config, provider.config, keyring=session_keyring(session)
        )
        await service.check_linked_git_provider(
            session=session, principal=actor.principal, config=config
        )
        changed.extend(f"config.{key}" for key in sorted(data.config))
    if "url" in changed or data.config is not None:
        await check_borrowed_token(session, actor, config, url)
    if data.name is not None:
        provider.name = data.name
        changed.insert(0, "name")
    provider.url = url
    provider.config = config
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
