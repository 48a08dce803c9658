"""Connecting by OAuth 2 authorization code: the tenant's OAuth applications, start, and storing
what the callback brought (the code exchange itself is :func:`shipyard.git.flows.complete_oauth`)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.audit import audit
from shipyard.accounts.models import Profile
from shipyard.accounts.permissions import Permission, role_allows
from shipyard.accounts.principal import Actor, Principal
from shipyard.config import Settings
from shipyard.crypto import Keyring
from shipyard.errors import Conflict, NotFound, ValidationFailed
from shipyard.git.models import GitOAuthApp, GitOAuthState, GitProvider
from shipyard.git.oauth_state import OAuthState, sign_state
from shipyard.git.providers import normalise_server_url, provider_client, server_key
from shipyard.git.providers.base import OAuthClient, RemoteUser, TokenSet
from shipyard.git.schemas import GitProviderRead, OAuthAppCreate, OAuthAppRead, OAuthAppUpdate
from shipyard.git.service import get_provider, provider_read, queue_sync

API_PREFIX = "/api/v1"


def callback_uri(settings: Settings, provider_type: str) -> str:
    """The redirect URI to register with the provider's OAuth application."""
    return (
        f"{settings.base_url.rstrip('/')}{API_PREFIX}/git-providers/oauth/{provider_type}/callback"
    )


def app_read(app: GitOAuthApp, settings: Settings) -> OAuthAppRead:
    return OAuthAppRead.model_validate(
        {
            "id": app.id,
            "type": app.type,
            "server_url": app.server_url,
            "client_id": app.client_id,
            "has_client_secret": bool(app.client_secret),
            "redirect_uri": callback_uri(settings, app.type),
            "created_at": app.created_at,
            "updated_at": app.updated_at,
        }
    )


async def list_apps(*, session: AsyncSession, principal: Principal) -> list[GitOAuthApp]:
    rows = await session.scalars(
        select(GitOAuthApp)
        .where(GitOAuthApp.tenant_id == principal.tenant_id)
        .order_by(GitOAuthApp.type, GitOAuthApp.server_url)
    )
    return list(rows.all())


async def get_app(*, session: AsyncSession, principal: Principal, app_id: UUID) -> GitOAuthApp:
    app = await session.scalar(
        select(GitOAuthApp).where(
            GitOAuthApp.id == app_id, GitOAuthApp.tenant_id == principal.tenant_id
        )
    )
    if app is None:
        raise NotFound("OAuth application not found", code="oauth_app_not_found")
    return app


async def create_app(*, session: AsyncSession, actor: Actor, data: OAuthAppCreate) -> GitOAuthApp:
    server = server_key(data.type, normalise_server_url(data.type, data.server_url))
    app = GitOAuthApp(
        tenant_id=actor.tenant_id,
        profile_id=actor.user_id,
        type=data.type,
        server_url=server,
        client_id=data.client_id,
        client_secret=data.client_secret,
    )
    try:
        async with session.begin_nested():
            session.add(app)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"an OAuth application for {data.type} at {server} already exists; update it",
            code="oauth_app_exists",
        ) from exc
    await session.refresh(app)
    await audit(
        session,
        actor=actor,
        action="git_oauth_app.create",
        resource_type="git_oauth_app",
        resource_id=app.id,
        details={"type": data.type, "server_url": server, "client_id": data.client_id},
    )
    return app


async def update_app(
    *, session: AsyncSession, actor: Actor, app_id: UUID, data: OAuthAppUpdate
) -> GitOAuthApp:
    app = await get_app(session=session, principal=actor.principal, app_id=app_id)
    if data.client_id is not None:
        app.client_id = data.client_id
    if data.client_secret is not None:
        app.client_secret = data.client_secret
    await session.flush()
    await session.refresh(app)
    await audit(
        session,
        actor=actor,
        action="git_oauth_app.update",
        resource_type="git_oauth_app",
        resource_id=app.id,
        details={"fields": sorted(data.model_fields_set)},
    )
    return app


async def delete_app(*, session: AsyncSession, actor: Actor, app_id: UUID) -> None:
    app = await get_app(session=session, principal=actor.principal, app_id=app_id)
    await session.delete(app)
    await audit(
        session,
        actor=actor,
        action="git_oauth_app.delete",
        resource_type="git_oauth_app",
        resource_id=app_id,
        details={"type": app.type, "server_url": app.server_url},
    )
    await session.flush()


async def app_for(
    *, session: AsyncSession, tenant_id: UUID, provider_type: str, server_url: str | None
) -> GitOAuthApp:
    server = server_key(provider_type, server_url)
    app = await session.scalar(
        select(GitOAuthApp).where(
            GitOAuthApp.tenant_id == tenant_id,
            GitOAuthApp.type == provider_type,
            GitOAuthApp.server_url == server,
        )
    )
    if app is None:
        raise ValidationFailed(
            f"no OAuth application is configured for {provider_type} at {server}; "
            "add one under /api/v1/git-oauth-apps",
            field="server_url",
        )
    return app


def check_redirect_to(redirect_to: str | None) -> str | None:
    """Only a path of this site: an open redirect would hand the user to anyone."""
    if redirect_to is None or redirect_to == "":
        return None
    if (
        not redirect_to.startswith("/")
        or redirect_to.startswith("//")
        or "\\" in redirect_to
        or len(redirect_to) > 500
    ):
        raise ValidationFailed(
            "must be a path on this site, starting with '/'", field="redirect_to"
        )
    return redirect_to


async def start(
    *,
    session: AsyncSession,
    actor: Actor,
    settings: Settings,
    keyring: Keyring,
    http: httpx.AsyncClient,
    provider_type: str,
    server_url: str | None,
    provider_id: UUID | None,
    redirect_to: str | None,
) -> str:
    """The provider's authorization URL, carrying a signed, expiring ``state`` (no network)."""
    if provider_id is not None:
        provider = await get_provider(session, actor.principal, provider_id)
        if provider.type != provider_type:
            raise ValidationFailed(
                f"provider {provider_id} is a {provider.type} provider", field="provider_id"
            )
        server = provider.server_url
    else:
        server = normalise_server_url(provider_type, server_url)
    redirect = check_redirect_to(redirect_to)
    app = await app_for(
        session=session, tenant_id=actor.tenant_id, provider_type=provider_type, server_url=server
    )
    state = sign_state(
        keyring,
        tenant_id=actor.tenant_id,
        user_id=actor.user_id,
        provider_type=provider_type,
        server_url=server,
        provider_id=provider_id,
        redirect_to=redirect,
        ttl_seconds=settings.git_oauth_state_ttl_seconds,
    )
    client = provider_client(provider_type, http=http, settings=settings, server_url=server)
    return client.authorize_url(
        OAuthClient(app.client_id, app.client_secret),
        redirect_uri=callback_uri(settings, provider_type),
        state=state,
    )


async def redeem_state(*, session: AsyncSession, state: OAuthState) -> Principal:
    """Record the state as used and return who started it, still allowed to connect providers.

    Commit this on its own, before the code exchange: a replay is then refused even when the
    exchange fails.
    """
    redeemed = await session.scalar(
        insert(GitOAuthState)
        .values(
            nonce=state.nonce,
            tenant_id=state.tenant_id,
            expires_at=datetime.fromtimestamp(state.expires_at, UTC),
        )
        .on_conflict_do_nothing(index_elements=["nonce"])
        .returning(GitOAuthState.nonce)
    )
    if redeemed is None:
        raise ValidationFailed("the OAuth state was already used; start again", field="state")
    profile = await session.get(Profile, state.user_id)
    if profile is None or profile.tenant_id != state.tenant_id:
        raise ValidationFailed("the account that started this no longer exists", field="state")
    if not role_allows(profile.role, Permission.MANAGE_GIT_PROVIDERS):
        raise ValidationFailed(
            "the account that started this may no longer manage git providers", field="state"
        )
    return Principal(user_id=state.user_id, tenant_id=state.tenant_id, role=profile.role, email="")


async def save_connection(
    *,
    session: AsyncSession,
    actor: Actor,
    state: OAuthState,
    tokens: TokenSet,
    user: RemoteUser,
) -> GitProviderRead:
    """Create (or reconnect) the provider the authorization in ``state`` was for."""
    if state.provider_id is not None:
        provider = await get_provider(session, actor.principal, state.provider_id, for_update=True)
        action = "git_provider.reconnect"
    else:
        provider = await _existing_account(session, state, user.login) or GitProvider(
            tenant_id=state.tenant_id,
            profile_id=state.user_id,
            type=state.provider_type,
            server_url=state.server_url,
        )
        action = "git_provider.create" if provider.id is None else "git_provider.reconnect"
    provider.name = user.login
    provider.display_name = provider.display_name or user.name or user.login
    provider.access_token = tokens.access_token
    provider.refresh_token = tokens.refresh_token
    provider.expires_at = tokens.expires_at
    provider.is_configured = True
    provider.error = None
    session.add(provider)
    await session.flush()
    await audit(
        session,
        actor=actor,
        action=action,
        resource_type="git_provider",
        resource_id=provider.id,
        details={"type": state.provider_type, "name": user.login, "via": "oauth"},
    )
    await queue_sync(session=session, provider=provider)
    await session.flush()
    await session.refresh(provider)
    return provider_read(provider)


async def _existing_account(
    session: AsyncSession, state: OAuthState, login: str
) -> GitProvider | None:
    """Authorizing the same account again refreshes its connection instead of duplicating it."""
    found = await session.scalar(
        select(GitProvider).where(
            GitProvider.tenant_id == state.tenant_id,
            GitProvider.type == state.provider_type,
            GitProvider.server_url.is_(None)
            if state.server_url is None
            else GitProvider.server_url == state.server_url,
            GitProvider.name == login,
        )
    )
    return found
