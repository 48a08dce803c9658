"""Git actions that talk to a provider or run git: never inside a database transaction.

Each flow reads what it needs in one short transaction, calls the provider (or git) with no
transaction open, and writes the result through a service function in another. A person waits
on every one of them, so a slow provider holds no pooled connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from shipyard.accounts.principal import Actor, Principal, RequestContext
from shipyard.errors import NotFound, ProviderError, ValidationFailed
from shipyard.git import local, oauth, repositories, service
from shipyard.git.browse import Browser
from shipyard.git.credentials import clone_source
from shipyard.git.gitcmd import GitCommandFailed
from shipyard.git.models import GitProvider
from shipyard.git.oauth_state import verify_state
from shipyard.git.providers import normalise_server_url, provider_client
from shipyard.git.providers.auth import StaticToken
from shipyard.git.providers.base import MalformedResponse, OAuthClient, RemoteUser
from shipyard.git.providers.oauth import OAuthFailed
from shipyard.git.schemas import (
    GitProviderCreate,
    GitProviderRead,
    GitProviderUpdate,
    RepositoryCreate,
    RepositoryRead,
)
from shipyard.git.scripts import ScriptFile
from shipyard.outbound.errors import OutboundRefused

if TYPE_CHECKING:
    from shipyard.runtime import Runtime

PAGE_LIMIT = 200


async def verify_token(
    *, runtime: Runtime, provider_type: str, server_url: str | None, token: str
) -> RemoteUser:
    """The account ``token`` belongs to; every way it can fail names the field to fix."""
    client = provider_client(
        provider_type,
        http=runtime.http,
        settings=runtime.settings,
        server_url=server_url,
        token=StaticToken(token),
        gate=service.interactive_gate(runtime.settings),
    )
    try:
        return await client.current_user()
    except MalformedResponse as exc:
        raise ValidationFailed(
            f"{client.api_base} does not answer like a {provider_type} API: {exc.message}",
            field="server_url",
        ) from exc
    except NotFound as exc:
        raise ValidationFailed(
            f"no {provider_type} API at {client.api_base} ({exc.message})", field="server_url"
        ) from exc
    except ProviderError as exc:
        if exc.code == "outbound_refused":
            raise ValidationFailed(exc.message, field="server_url", code=exc.code) from exc
        if exc.code in {"provider_unauthorized", "provider_forbidden"}:
            raise ValidationFailed(
                f"the provider refused this token: {exc.message}", field="access_token"
            ) from exc
        if exc.code in {"provider_unreachable", "provider_timeout"}:
            raise ValidationFailed(exc.message, field="server_url") from exc
        raise


async def connect_provider(
    *, runtime: Runtime, actor: Actor, data: GitProviderCreate
) -> GitProviderRead:
    """Connect with a personal access token, checked against the provider's current user first."""
    server_url = normalise_server_url(data.type, data.server_url)
    if server_url is not None:
        await runtime.outbound.validate_url(server_url, field="server_url")
    user = await verify_token(
        runtime=runtime, provider_type=data.type, server_url=server_url, token=data.access_token
    )
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.add_provider(
            session=session, actor=actor, data=data, server_url=server_url, user=user
        )


async def update_provider(
    *, runtime: Runtime, actor: Actor, provider_id: UUID, data: GitProviderUpdate
) -> GitProviderRead:
    """Rename, replace the token (checked against the provider first), or move to another
    server: that needs the token again in the same request, checked at the new address."""
    user: RemoteUser | None = None
    moving = "server_url" in data.model_fields_set
    if data.access_token is not None or moving:
        async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
            provider = await service.get_provider(session, actor.principal, provider_id)
            provider_type, server_url = provider.type, provider.server_url
        if moving:
            new_url = normalise_server_url(provider_type, data.server_url)
            if new_url != server_url:
                service.require_token_for_move(data)
                if new_url is not None:
                    await runtime.outbound.validate_url(new_url, field="server_url")
            server_url = new_url
    if data.access_token is not None:
        user = await verify_token(
            runtime=runtime,
            provider_type=provider_type,
            server_url=server_url,
            token=data.access_token,
        )
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await service.update_provider(
            session=session, actor=actor, provider_id=provider_id, data=data, user=user
        )


async def complete_oauth(
    *,
    runtime: Runtime,
    context: RequestContext,
    provider_type: str,
    code: str | None,
    state: str | None,
    error: str | None,
    error_description: str | None,
) -> tuple[GitProviderRead, str | None]:
    """The OAuth callback: exchange the code for tokens and create (or reconnect) the provider.

    The browser arrives without our credentials: the signed ``state`` says who asked, and that
    person is the actor of the audit entry.
    """
    parsed = verify_state(runtime.keyring, state or "", provider_type=provider_type)
    async with runtime.db.session(tenant_id=parsed.tenant_id, user_id=parsed.user_id) as session:
        principal = await oauth.redeem_state(session=session, state=parsed)
    if error:
        raise ValidationFailed(
            f"the provider did not authorize Shipyard: {error_description or error}", field="code"
        )
    if not code:
        raise ValidationFailed("the provider sent no authorization code", field="code")
    async with runtime.db.session(tenant_id=parsed.tenant_id, user_id=parsed.user_id) as session:
        app = await oauth.app_for(
            session=session,
            tenant_id=parsed.tenant_id,
            provider_type=provider_type,
            server_url=parsed.server_url,
        )
        credentials = OAuthClient(app.client_id, app.client_secret)
    settings, http = runtime.settings, runtime.http
    client = provider_client(
        provider_type, http=http, settings=settings, server_url=parsed.server_url
    )
    try:
        tokens = await client.exchange_code(
            credentials, code=code, redirect_uri=oauth.callback_uri(settings, provider_type)
        )
    except OAuthFailed as exc:
        raise ValidationFailed(
            f"the provider refused the authorization code: {exc.reason}", field="code"
        ) from exc
    user = await provider_client(
        provider_type,
        http=http,
        settings=settings,
        server_url=parsed.server_url,
        token=StaticToken(tokens.access_token),
        gate=service.interactive_gate(settings),
    ).current_user()
    actor = Actor(principal=principal, context=context)
    async with runtime.db.session(tenant_id=parsed.tenant_id, user_id=parsed.user_id) as session:
        provider = await oauth.save_connection(
            session=session, actor=actor, state=parsed, tokens=tokens, user=user
        )
    return provider, parsed.redirect_to


async def add_repository(
    *, runtime: Runtime, actor: Actor, data: RepositoryCreate
) -> RepositoryRead:
    """Add a public repository by clone URL; git itself (``ls-remote``) checks that it is one.

    The URL's host is checked against the outbound policy first: a refused address is a 422
    naming ``url`` and git never runs.
    """
    url = repositories.parse_repository_url(data.url)
    await runtime.outbound.validate_url(url.clone_url, field="url")
    # Refuse a duplicate before asking the server (the write below checks again).
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        await repositories.refuse_duplicate_url(
            session=session, tenant_id=actor.tenant_id, clone_url=url.clone_url
        )
    try:
        heads = await local.ls_remote(url.clone_url, policy=runtime.outbound)
    except OutboundRefused as exc:  # the name resolved elsewhere since the check
        raise ValidationFailed(exc.message, field="url", code=exc.code) from exc
    except GitCommandFailed as exc:
        reason = (
            "the server asks for credentials: only public repositories can be added by URL; "
            "connect its provider instead"
            if exc.is_auth_failure
            else f"is not a Git repository Shipyard can read ({exc.message})"
        )
        raise ValidationFailed(reason, field="url") from exc
    async with runtime.db.session(tenant_id=actor.tenant_id, user_id=actor.user_id) as session:
        return await repositories.add_url_repository(
            session=session, actor=actor, url=url, data=data, default_branch=heads.default_branch
        )


async def open_browser(*, runtime: Runtime, principal: Principal, repository_id: UUID) -> Browser:
    """A reader of one repository of the caller's tenant; its reads run with no transaction open.

    The repository and its provider are loaded in a short transaction; a token the provider
    refreshes on the way is saved in a transaction of its own.
    """
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        repository = await repositories.get_repository(
            session=session, principal=principal, repository_id=repository_id
        )
        provider = (
            await session.get(GitProvider, repository.provider_id)
            if repository.provider_id
            else None
        )
        pinned = await repositories.is_pinned(
            session=session, principal=principal, repository_id=repository_id
        )
    return Browser(
        db=runtime.db,
        settings=runtime.settings,
        http=runtime.http,
        cache=runtime.browse_cache,
        repository=repository,
        provider=provider,
        is_pinned=pinned,
    )


async def script_catalogue(
    *, runtime: Runtime, principal: Principal, repository_id: UUID, ref: str | None
) -> list[ScriptFile]:
    """The runnable scripts of a repository at ``ref`` (its default branch when None), uncached.

    The same entries and ids as ``GET /repositories/{id}/scripts``; for callers that check a
    deployment's ``script_ids`` without holding a transaction across the provider call.
    """
    browser = await open_browser(runtime=runtime, principal=principal, repository_id=repository_id)
    return await browser.script_files(browser.default_ref(ref))


async def resolve_commit(
    *, runtime: Runtime, principal: Principal, repository_id: UUID, ref: str | None
) -> str:
    """The full commit SHA ``ref`` means now, read from the server with git (no transaction).

    A branch resolves to its newest commit, a tag to its commit, a SHA is checked to exist;
    ``None`` means the repository's default branch. The fetch lands in the clone cache the
    run's checkout uses, so the run then finds the commit there. An unknown ref is a 422
    naming ``ref``.
    """
    browser = await open_browser(runtime=runtime, principal=principal, repository_id=repository_id)
    chosen = browser.default_ref(ref)
    settings = runtime.settings
    source = await clone_source(
        db=runtime.db,
        settings=settings,
        tenant_id=principal.tenant_id,
        repository_id=repository_id,
        http=runtime.http,
    )
    try:
        _, sha = await local.resolve(
            settings.clone_cache_dir / str(principal.tenant_id),
            source.clone_url,
            chosen,
            source.credentials,
            time_limit=settings.git_clone_timeout_seconds,
            policy=runtime.outbound,
        )
    except NotFound as exc:
        raise ValidationFailed(
            f"ref {chosen!r} is not a branch, tag or commit of the repository",
            field="ref",
            code="ref_not_found",
        ) from exc
    return sha


# Reads for pages that ran a flow: each in a short transaction of its own.


async def read_providers(*, runtime: Runtime, principal: Principal) -> list[GitProviderRead]:
    """The tenant's providers (the first 200, as the providers page shows them)."""
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        items, _ = await service.list_providers(
            session=session, principal=principal, limit=PAGE_LIMIT, cursor=None
        )
    return items


async def read_repositories(
    *, runtime: Runtime, principal: Principal, limit: int
) -> tuple[list[RepositoryRead], str | None]:
    """The first page of the caller's repositories, pinned first."""
    async with runtime.db.session(
        tenant_id=principal.tenant_id, user_id=principal.user_id
    ) as session:
        return await repositories.list_repositories(
            session=session, principal=principal, limit=limit, cursor=None
        )
