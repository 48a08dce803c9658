"""Routes of the git domain, under one ``router``: providers, OAuth applications, repositories.

Each route parses, calls one action (a service with the request's session, or a flow with the
runtime when the action talks to a provider or runs git), and renders. Routes that run a flow
take no ``SessionDep``: no transaction stays open while Shipyard waits on another system.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import AfterValidator

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import (
    CurrentUser,
    HttpDep,
    KeyringDep,
    RequestContextDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    acting,
)
from shipyard.git import flows, oauth, repositories, service
from shipyard.git.browse import Browser
from shipyard.git.refs import validate_path, validate_ref
from shipyard.git.schemas import (
    BranchRead,
    FileRead,
    GitProviderCreate,
    GitProviderRead,
    GitProviderUpdate,
    OAuthAppCreate,
    OAuthAppRead,
    OAuthAppUpdate,
    PinRead,
    ProviderType,
    RepositoryCreate,
    RepositoryProviderType,
    RepositoryRead,
    ScriptCatalogue,
    SyncQueued,
    TreeRead,
)
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter()
providers = APIRouter(prefix="/git-providers", tags=["git providers"])
oauth_apps = APIRouter(prefix="/git-oauth-apps", tags=["git providers"])
repos = APIRouter(prefix="/repositories", tags=["repositories"])

Admin = Annotated[Actor, acting(Permission.MANAGE_GIT_PROVIDERS)]
Manager = Annotated[Actor, acting(Permission.MANAGE_REPOSITORIES)]
Pinner = Annotated[Actor, acting(Permission.PIN_REPOSITORIES)]
Ref = Annotated[str | None, Query(min_length=1, max_length=255), AfterValidator(validate_ref)]
RepoPath = Annotated[str, AfterValidator(validate_path)]


async def open_browser(repository_id: UUID, principal: CurrentUser, runtime: RuntimeDep) -> Browser:
    """The caller's reader of one repository (no session held: browsing calls the provider)."""
    return await flows.open_browser(
        runtime=runtime, principal=principal, repository_id=repository_id
    )


BrowserDep = Annotated[Browser, Depends(open_browser)]


# Providers


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
    data: GitProviderCreate, actor: Admin, runtime: RuntimeDep
) -> GitProviderRead:
    """Connect with a personal access token; a first sync is queued."""
    return await flows.connect_provider(runtime=runtime, actor=actor, data=data)


@providers.get("/oauth/{provider_type}/start")
async def oauth_start(
    provider_type: ProviderType,
    actor: Admin,
    session: SessionDep,
    settings: SettingsDep,
    keyring: KeyringDep,
    http: HttpDep,
    server_url: Annotated[str | None, Query(max_length=2000)] = None,
    provider_id: UUID | None = None,
    redirect_to: Annotated[str | None, Query(max_length=500)] = None,
) -> RedirectResponse:
    """Redirect to the provider's consent page; ``provider_id`` reconnects an existing one."""
    url = await oauth.start(
        session=session,
        actor=actor,
        settings=settings,
        keyring=keyring,
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
    runtime: RuntimeDep,
    context: RequestContextDep,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
    error_description: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Where the provider sends the browser back; the signed ``state`` says who asked."""
    provider, redirect_to = await flows.complete_oauth(
        runtime=runtime,
        context=context,
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
    return JSONResponse(provider.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)


@providers.get("/{provider_id}", response_model=GitProviderRead)
async def get_provider(
    provider_id: UUID, principal: CurrentUser, session: SessionDep
) -> GitProviderRead:
    return await service.read_provider(
        session=session, principal=principal, provider_id=provider_id
    )


@providers.patch("/{provider_id}", response_model=GitProviderRead)
async def update_provider(
    provider_id: UUID, data: GitProviderUpdate, actor: Admin, runtime: RuntimeDep
) -> GitProviderRead:
    """Rename, or replace the token (checked against the provider first)."""
    return await flows.update_provider(
        runtime=runtime, actor=actor, provider_id=provider_id, data=data
    )


@providers.delete("/{provider_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider(provider_id: UUID, actor: Admin, session: SessionDep) -> Response:
    """Disconnect; the provider's repositories and their pins are removed."""
    await service.delete_provider(session=session, actor=actor, provider_id=provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@providers.post(
    "/{provider_id}/sync", response_model=SyncQueued, status_code=status.HTTP_202_ACCEPTED
)
async def sync_provider(provider_id: UUID, actor: Admin, session: SessionDep) -> SyncQueued:
    """Queue a sync; ``queued`` is false when one is already waiting."""
    return await service.request_sync(session=session, actor=actor, provider_id=provider_id)


# OAuth applications


@oauth_apps.get("", response_model=list[OAuthAppRead])
async def list_oauth_apps(
    actor: Admin, session: SessionDep, settings: SettingsDep
) -> list[OAuthAppRead]:
    apps = await oauth.list_apps(session=session, principal=actor.principal)
    return [oauth.app_read(app, settings) for app in apps]


@oauth_apps.post("", response_model=OAuthAppRead, status_code=status.HTTP_201_CREATED)
async def create_oauth_app(
    data: OAuthAppCreate, actor: Admin, session: SessionDep, settings: SettingsDep
) -> OAuthAppRead:
    """Register the OAuth application (client id and secret) of one provider server."""
    app = await oauth.create_app(session=session, actor=actor, data=data)
    return oauth.app_read(app, settings)


@oauth_apps.get("/{app_id}", response_model=OAuthAppRead)
async def get_oauth_app(
    app_id: UUID, actor: Admin, session: SessionDep, settings: SettingsDep
) -> OAuthAppRead:
    return oauth.app_read(
        await oauth.get_app(session=session, principal=actor.principal, app_id=app_id), settings
    )


@oauth_apps.patch("/{app_id}", response_model=OAuthAppRead)
async def update_oauth_app(
    app_id: UUID,
    data: OAuthAppUpdate,
    actor: Admin,
    session: SessionDep,
    settings: SettingsDep,
) -> OAuthAppRead:
    app = await oauth.update_app(session=session, actor=actor, app_id=app_id, data=data)
    return oauth.app_read(app, settings)


@oauth_apps.delete("/{app_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_oauth_app(app_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await oauth.delete_app(session=session, actor=actor, app_id=app_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Repositories


@repos.get("", response_model=Page[RepositoryRead])
async def list_repositories(
    principal: CurrentUser,
    session: SessionDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Search name, owner/name and URLs")
    ] = None,
    provider_id: UUID | None = None,
    provider_type: RepositoryProviderType | None = None,
    language: Annotated[str | None, Query(max_length=100)] = None,
    is_private: bool | None = None,
    pinned: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[RepositoryRead]:
    """Your pinned repositories first, then by owner/name."""
    items, next_cursor = await repositories.list_repositories(
        session=session,
        principal=principal,
        q=q,
        provider_id=provider_id,
        provider_type=provider_type,
        language=language,
        is_private=is_private,
        pinned=pinned,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@repos.post("", response_model=RepositoryRead, status_code=status.HTTP_201_CREATED)
async def add_repository(
    data: RepositoryCreate, actor: Manager, runtime: RuntimeDep
) -> RepositoryRead:
    """Add a public repository by its clone URL, without a provider."""
    return await flows.add_repository(runtime=runtime, actor=actor, data=data)


@repos.get("/{repository_id}", response_model=RepositoryRead)
async def get_repository(
    repository_id: UUID, principal: CurrentUser, session: SessionDep
) -> RepositoryRead:
    return await repositories.read_repository(
        session=session, principal=principal, repository_id=repository_id
    )


@repos.delete("/{repository_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_repository(repository_id: UUID, actor: Manager, session: SessionDep) -> Response:
    await repositories.delete_repository(session=session, actor=actor, repository_id=repository_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@repos.put("/{repository_id}/pin", response_model=PinRead)
async def pin_repository(repository_id: UUID, actor: Pinner, session: SessionDep) -> PinRead:
    await repositories.pin(session=session, actor=actor, repository_id=repository_id)
    return PinRead(repository_id=repository_id, is_pinned=True)


@repos.delete("/{repository_id}/pin", response_model=PinRead)
async def unpin_repository(repository_id: UUID, actor: Pinner, session: SessionDep) -> PinRead:
    await repositories.unpin(session=session, actor=actor, repository_id=repository_id)
    return PinRead(repository_id=repository_id, is_pinned=False)


@repos.get("/{repository_id}/branches", response_model=list[BranchRead])
async def list_branches(browse: BrowserDep) -> list[BranchRead]:
    return await browse.branches()


@repos.get("/{repository_id}/tree", response_model=TreeRead)
async def get_tree(
    browse: BrowserDep,
    ref: Ref = None,
    path: Annotated[RepoPath, Query(max_length=4096)] = "",
) -> TreeRead:
    """The entries of a directory at a ref (the default branch when none)."""
    return await browse.tree(ref, path)


@repos.get("/{repository_id}/file", response_model=FileRead)
async def get_file(
    browse: BrowserDep,
    path: Annotated[RepoPath, Query(min_length=1, max_length=4096)],
    ref: Ref = None,
) -> FileRead:
    """A file's text; binary files and files over the size cap come without content."""
    return await browse.file(ref, path)


@repos.get("/{repository_id}/scripts", response_model=ScriptCatalogue)
async def list_scripts(browse: BrowserDep, ref: Ref = None) -> ScriptCatalogue:
    """The runnable scripts at a ref; their ids are what deployments' ``script_ids`` name."""
    return await browse.scripts(ref)


router.include_router(providers)
router.include_router(oauth_apps)
router.include_router(repos)
