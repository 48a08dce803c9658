"""Where and how to clone a Shipyard repository: its clone URL and the provider's token."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import NotFound, ProviderError
from shipyard.git.gitcmd import GitCredentials
from shipyard.git.models import GitProvider, Repository
from shipyard.git.tokens import ProviderTokenSource
from shipyard.outbound.client import build_http_client

# The user name each provider expects next to a token in HTTP basic auth for git.
CLONE_USERNAMES = {"github": "x-access-token", "gitlab": "oauth2", "gitea": "oauth2"}


@dataclass(frozen=True)
class CloneSource:
    clone_url: str
    default_branch: str | None
    credentials: GitCredentials | None


def clone_username(provider: GitProvider) -> str:
    if provider.type == "gitea" and provider.name:
        return provider.name
    return CLONE_USERNAMES.get(provider.type, "x-access-token")


async def clone_source(
    *,
    db: Database,
    settings: Settings,
    tenant_id: UUID,
    repository_id: UUID,
    http: httpx.AsyncClient | None = None,
) -> CloneSource:
    """The clone URL and credentials of a repository of ``tenant_id`` (token refreshed if due).

    Pass the runtime's ``http``: without it a client is opened for the one token refresh.
    """
    async with db.session(tenant_id=tenant_id) as session:
        repository = await session.scalar(
            select(Repository).where(
                Repository.id == repository_id, Repository.tenant_id == tenant_id
            )
        )
        if repository is None:
            raise NotFound("repository not found", code="repository_not_found")
        provider = (
            await session.get(GitProvider, repository.provider_id)
            if repository.provider_id
            else None
        )
    clone_url = repository.clone_url or repository.url
    if not clone_url:
        raise NotFound("the repository has no clone URL; sync its provider", code="no_clone_url")
    if provider is None:
        return CloneSource(clone_url, repository.default_branch, None)
    if not provider.access_token:
        raise ProviderError(
            f"the {provider.type} provider of this repository has no token; connect it again",
            code="provider_not_configured",
        )
    if http is None:
        async with build_http_client(settings) as own_http:
            token = await _token(db, settings, own_http, provider)
    else:
        token = await _token(db, settings, http, provider)
    return CloneSource(
        clone_url,
        repository.default_branch,
        GitCredentials(token=token, username=clone_username(provider)),
    )


async def _token(
    db: Database, settings: Settings, http: httpx.AsyncClient, provider: GitProvider
) -> str:
    return await ProviderTokenSource(db=db, settings=settings, http=http, provider=provider).token()
