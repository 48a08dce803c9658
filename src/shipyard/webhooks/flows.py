"""Registering a hook at the template's Git provider, and removing it: the network, outside
any transaction, between short ones that read what is needed and record the result.

Only a template whose repository comes from a connected provider (GitHub, GitLab, Gitea) of
the same kind as the hook can be registered. The provider's answers map to our errors in the
shared provider layer: credentials refused -> 409 (``provider_unauthorized`` /
``provider_forbidden``: the connection needs attention, not our outage), the repository gone
-> 404, the provider failing or unreachable -> 502.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor
from shipyard.errors import Conflict, ValidationFailed
from shipyard.git.models import GitProvider, Repository
from shipyard.git.providers import provider_client
from shipyard.git.providers.base import ProviderClient, RepoRef
from shipyard.git.service import interactive_gate
from shipyard.git.tokens import ProviderTokenSource
from shipyard.templates import service as templates
from shipyard.webhooks import service
from shipyard.webhooks.schemas import WebhookRead

if TYPE_CHECKING:
    from shipyard.runtime import Runtime


@dataclass(frozen=True)
class Registration:
    webhook_id: UUID
    provider: str
    url: str
    secret: str
    events: list[str]
    remote_hook_id: str | None
    repo: RepoRef
    git_provider: GitProvider


async def _registration(*, runtime: Runtime, actor: Actor, webhook_id: UUID) -> Registration:
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        webhook = await service.get_webhook(session=session, webhook_id=webhook_id)
        template = await templates.get_template(session=session, template_id=webhook.template_id)
        repository = (
            await session.get(Repository, template.repository_id)
            if template.repository_id
            else None
        )
        git_provider = (
            await session.get(GitProvider, repository.provider_id)
            if repository is not None and repository.provider_id
            else None
        )
        if repository is None or git_provider is None:
            raise ValidationFailed(
                "the template's repository does not come from a connected provider; add the "
                "hook's URL and secret at the repository's server by hand",
                field="repository_id",
                code="no_provider",
            )
        if webhook.provider != git_provider.type:
            raise ValidationFailed(
                f"a {webhook.provider} hook cannot be registered at a {git_provider.type} "
                "repository",
                field="provider",
                code="provider_mismatch",
            )
        return Registration(
            webhook_id=webhook.id,
            provider=webhook.provider,
            url=service.hook_url(runtime.settings, webhook.id),
            secret=webhook.secret,
            events=list(webhook.events),
            remote_hook_id=webhook.remote_hook_id,
            repo=RepoRef(
                external_id=repository.external_id or "",
                owner=repository.owner,
                name=repository.name,
            ),
            git_provider=git_provider,
        )


def _client(runtime: Runtime, git_provider: GitProvider) -> ProviderClient:
    settings, http = runtime.settings, runtime.http
    return provider_client(
        git_provider.type,
        http=http,
        settings=settings,
        server_url=git_provider.server_url,
        token=ProviderTokenSource(
            db=runtime.db, settings=settings, http=http, provider=git_provider
        ),
        gate=interactive_gate(settings),
    )


async def register_webhook(*, runtime: Runtime, actor: Actor, webhook_id: UUID) -> WebhookRead:
    """Create the hook at the provider (URL, secret, events, JSON) and keep its id there."""
    found = await _registration(runtime=runtime, actor=actor, webhook_id=webhook_id)
    if found.remote_hook_id is not None:
        raise Conflict(
            f"the hook is registered at the provider already (id {found.remote_hook_id}); "
            "remove it first",
            code="already_registered",
        )
    client = _client(runtime, found.git_provider)
    remote_id = await client.create_hook(
        found.repo, url=found.url, secret=found.secret, events=found.events
    )
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        webhook = await service.set_remote_hook(
            session=session, actor=actor, webhook_id=webhook_id, remote_hook_id=remote_id
        )
        return service.to_read(webhook, settings=runtime.settings)


async def unregister_webhook(*, runtime: Runtime, actor: Actor, webhook_id: UUID) -> WebhookRead:
    """Remove the hook Shipyard registered at the provider (gone there already: fine)."""
    found = await _registration(runtime=runtime, actor=actor, webhook_id=webhook_id)
    if found.remote_hook_id is None:
        raise Conflict("the hook is not registered at the provider", code="not_registered")
    await _client(runtime, found.git_provider).delete_hook(found.repo, found.remote_hook_id)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        webhook = await service.set_remote_hook(
            session=session, actor=actor, webhook_id=webhook_id, remote_hook_id=None
        )
        return service.to_read(webhook, settings=runtime.settings)


async def delete_webhook(*, runtime: Runtime, actor: Actor, webhook_id: UUID) -> None:
    """Delete the hook; one Shipyard registered at the provider is removed there first."""
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        webhook = await service.get_webhook(session=session, webhook_id=webhook_id)
        registered = webhook.remote_hook_id is not None
    if registered:
        # ValidationFailed: the repository or its provider is gone from Shipyard, so there is
        # nothing left to reach; the hook is deleted here anyway.
        with suppress(ValidationFailed):
            await unregister_webhook(runtime=runtime, actor=actor, webhook_id=webhook_id)
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        await service.delete_webhook(session=session, actor=actor, webhook_id=webhook_id)
