"""Routes: git providers (token and OAuth connections, sync) and the tenant's OAuth applications."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.deps import CurrentUser, DatabaseDep, SessionDep, SettingsDep, require
from shipyard.git import oauth, service
from shipyard.git.repos_api import router as repositories_router
from shipyard.git.schemas import (
    GitProviderCreate,
    GitProviderRead,
    GitProviderUpdate,
    OAuthAppCreate,
    OAuthAppRead,
    OAuthAppUpdate,
    ProviderType,
    SyncQueued,
)
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter()
providers = APIRouter(prefix="/git-providers", tags=["git providers"])
oauth_apps = APIRouter(prefix="/git-oauth-apps", tags=["git providers"])

Admin = Annotated[Principal, require(Permission.MANAGE_GIT_PROVIDERS)]


async def provider_http(request: Request) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client for provider APIs: the application's when it has one, else per request."""
    shared: httpx.AsyncClient | None = getattr(request.app.state, "git_http", None)
    if shared is not None:
        yield shared
        return
    async with httpx.AsyncClient() as http:
        yield http


HttpDep = Annotated[httpx.AsyncClient, Depends(provider_http)]


@providers.get("", response_model=Page[GitProviderRead])
async def list_providers(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[GitProviderRead]:
    items, next_cursor = await service.list_providers(
        session=session, principal=principal, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@providers.post("", response_model=GitProviderRead, status_code=status.HTTP_201_CREATED)
async def create_provider(
    data: GitProviderCreate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpDep,
) -> GitProviderRead:
    """Connect with a personal access token; a first sync is queued."""
    provider = await service.create_provider(
        session=session, principal=principal, data=data, settings=settings, http=http
    )
    return service.provider_read(provider)


@providers.get("/oauth/{provider_type}/start")
async def oauth_start(
    provider_type: ProviderType,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpDep,
    server_url: Annotated[str | None, Query(max_length=2000)] = None,
    provider_id: UUID | None = None,
    redirect_to: Annotated[str | None, Query(max_length=500)] = None,
) -> RedirectResponse:
    """Redirect to the provider's consent page; ``provider_id`` reconnects an existing one."""
    url = await oauth.start(
        session=session,
        principal=principal,
        settings=settings,
        http=http,
        provider_type=provider_type,
        server_url=server_url,
        provider_id=provider_id,
        redirect_to=redirect_to,
    )
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@providers.get("/oauth/{provider_type}/callback", response_model=GitProviderRead)
async def oauth_callback(
    provider_type: ProviderType,
    db: DatabaseDep,
    settings: SettingsDep,
    http: HttpDep,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
    error_description: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Where the provider sends the browser back; the signed ``state`` says who asked."""
    provider, redirect_to = await oauth.callback(
        db=db,
        settings=settings,
        http=http,
        provider_type=provider_type,
        code=code,
        state=state,
        error=error,
        error_description=error_description,
    )
    if redirect_to:
        separator = "&" if "?" in redirect_to else "?"
        query = urlencode({"provider_id": str(provider.id)})
        return RedirectResponse(f"{redirect_to}{separator}{query}", status_code=303)
    return JSONResponse(
        service.provider_read(provider).model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED,
    )


@providers.get("/{provider_id}", response_model=GitProviderRead)
async def get_provider(
    provider_id: UUID, principal: CurrentUser, session: SessionDep
) -> GitProviderRead:
    return await service.read_provider(
        session=session, principal=principal, provider_id=provider_id
    )


@providers.patch("/{provider_id}", response_model=GitProviderRead)
async def update_provider(
    provider_id: UUID,
    data: GitProviderUpdate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    http: HttpDep,
) -> GitProviderRead:
    """Rename, or replace the token (checked against the provider first)."""
    provider = await service.update_provider(
        session=session,
        principal=principal,
        provider_id=provider_id,
        data=data,
        settings=settings,
        http=http,
    )
    return await service.read_provider(
        session=session, principal=principal, provider_id=provider.id
    )


@providers.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(provider_id: UUID, principal: Admin, session: SessionDep) -> Response:
    """Disconnect; the provider's repositories and their pins are removed."""
    await service.delete_provider(session=session, principal=principal, provider_id=provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@providers.post(
    "/{provider_id}/sync", response_model=SyncQueued, status_code=status.HTTP_202_ACCEPTED
)
async def sync_provider(provider_id: UUID, principal: Admin, session: SessionDep) -> SyncQueued:
    """Queue a sync; ``queued`` is false when one is already waiting."""
    provider, queued = await service.request_sync(
        session=session, principal=principal, provider_id=provider_id
    )
    return SyncQueued(
        provider_id=provider.id,
        sync_status=provider.sync_status or "pending",
        queued=queued,
    )


@oauth_apps.get("", response_model=list[OAuthAppRead])
async def list_oauth_apps(
    principal: Admin, session: SessionDep, settings: SettingsDep
) -> list[OAuthAppRead]:
    apps = await oauth.list_apps(session=session, principal=principal)
    return [oauth.app_read(app, settings) for app in apps]


@oauth_apps.post("", response_model=OAuthAppRead, status_code=status.HTTP_201_CREATED)
async def create_oauth_app(
    data: OAuthAppCreate, principal: Admin, session: SessionDep, settings: SettingsDep
) -> OAuthAppRead:
    """Register the OAuth application (client id and secret) of one provider server."""
    app = await oauth.create_app(session=session, principal=principal, data=data)
    return oauth.app_read(app, settings)


@oauth_apps.get("/{app_id}", response_model=OAuthAppRead)
async def get_oauth_app(
    app_id: UUID, principal: Admin, session: SessionDep, settings: SettingsDep
) -> OAuthAppRead:
    return oauth.app_read(await oauth.get_app(session, principal, app_id), settings)


@oauth_apps.patch("/{app_id}", response_model=OAuthAppRead)
async def update_oauth_app(
    app_id: UUID,
    data: OAuthAppUpdate,
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
) -> OAuthAppRead:
    app = await oauth.update_app(session=session, principal=principal, app_id=app_id, data=data)
    return oauth.app_read(app, settings)


@oauth_apps.delete("/{app_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_oauth_app(app_id: UUID, principal: Admin, session: SessionDep) -> Response:
    await oauth.delete_app(session=session, principal=principal, app_id=app_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


router.include_router(providers)
router.include_router(oauth_apps)
router.include_router(repositories_router)
