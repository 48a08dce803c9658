"""Routes: repositories — list, add by URL, pins, browsing and the script catalogue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Principal
from shipyard.config import Settings
from shipyard.deps import CurrentUser, DatabaseDep, SessionDep, SettingsDep, require
from shipyard.git import repositories as service
from shipyard.git.browse import Browser, TTLCache
from shipyard.git.models import GitProvider, Repository
from shipyard.git.schemas import (
    BranchRead,
    FileRead,
    PinRead,
    RepositoryCreate,
    RepositoryProviderType,
    RepositoryRead,
    ScriptCatalogue,
    TreeRead,
)
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/repositories", tags=["repositories"])

Manager = Annotated[Principal, require(Permission.MANAGE_REPOSITORIES)]
Pinner = Annotated[Principal, require(Permission.PIN_REPOSITORIES)]
Ref = Annotated[str | None, Query(min_length=1, max_length=255)]


def browse_cache(request: Request, settings: Settings) -> TTLCache:
    """One cache per application: short-lived answers shared by its requests."""
    cache: TTLCache | None = getattr(request.app.state, "git_browse_cache", None)
    if cache is None:
        cache = TTLCache(settings.git_browse_cache_ttl_seconds)
        request.app.state.git_browse_cache = cache
    return cache


async def browser(
    repository_id: UUID,
    request: Request,
    principal: CurrentUser,
    session: SessionDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> AsyncIterator[Browser]:
    repository = await service.get_repository(session, principal, repository_id)
    provider = await _provider(session, repository.provider_id)
    shared: httpx.AsyncClient | None = getattr(request.app.state, "git_http", None)
    if shared is not None:
        yield _browser(db, settings, shared, request, repository, provider)
        return
    async with httpx.AsyncClient() as http:
        yield _browser(db, settings, http, request, repository, provider)


async def _provider(session: AsyncSession, provider_id: UUID | None) -> GitProvider | None:
    return await session.get(GitProvider, provider_id) if provider_id else None


def _browser(
    db: DatabaseDep,
    settings: Settings,
    http: httpx.AsyncClient,
    request: Request,
    repository: Repository,
    provider: GitProvider | None,
) -> Browser:
    return Browser(
        db=db,
        settings=settings,
        http=http,
        cache=browse_cache(request, settings),
        repository=repository,
        provider=provider,
    )


BrowserDep = Annotated[Browser, Depends(browser, scope="function")]


@router.get("", response_model=Page[RepositoryRead])
async def list_repositories(
    principal: CurrentUser,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200, description="Search name and owner")] = None,
    provider_id: UUID | None = None,
    provider_type: RepositoryProviderType | None = None,
    language: Annotated[str | None, Query(max_length=100)] = None,
    is_private: bool | None = None,
    pinned: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[RepositoryRead]:
    """Your pinned repositories first, then by owner/name."""
    items, next_cursor = await service.list_repositories(
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


@router.post("", response_model=RepositoryRead, status_code=status.HTTP_201_CREATED)
async def add_repository(
    data: RepositoryCreate, principal: Manager, session: SessionDep
) -> RepositoryRead:
    """Add a public repository by its clone URL, without a provider."""
    repository = await service.add_by_url(session=session, principal=principal, data=data)
    return service.repository_read(repository, is_pinned=False)


@router.get("/{repository_id}", response_model=RepositoryRead)
async def get_repository(
    repository_id: UUID, principal: CurrentUser, session: SessionDep
) -> RepositoryRead:
    return await service.read_repository(
        session=session, principal=principal, repository_id=repository_id
    )


@router.delete("/{repository_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_repository(
    repository_id: UUID, principal: Manager, session: SessionDep
) -> Response:
    await service.delete_repository(
        session=session, principal=principal, repository_id=repository_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{repository_id}/pin", response_model=PinRead)
async def pin_repository(repository_id: UUID, principal: Pinner, session: SessionDep) -> PinRead:
    await service.pin(session=session, principal=principal, repository_id=repository_id)
    return PinRead(repository_id=repository_id, is_pinned=True)


@router.delete("/{repository_id}/pin", response_model=PinRead)
async def unpin_repository(repository_id: UUID, principal: Pinner, session: SessionDep) -> PinRead:
    await service.unpin(session=session, principal=principal, repository_id=repository_id)
    return PinRead(repository_id=repository_id, is_pinned=False)


@router.get("/{repository_id}/branches", response_model=list[BranchRead])
async def list_branches(browse: BrowserDep) -> list[BranchRead]:
    return await browse.branches()


@router.get("/{repository_id}/tree", response_model=TreeRead)
async def get_tree(
    browse: BrowserDep,
    ref: Ref = None,
    path: Annotated[str, Query(max_length=4096)] = "",
) -> TreeRead:
    """The entries of a directory at a ref (the default branch when none)."""
    return await browse.tree(ref, path)


@router.get("/{repository_id}/file", response_model=FileRead)
async def get_file(
    browse: BrowserDep,
    path: Annotated[str, Query(min_length=1, max_length=4096)],
    ref: Ref = None,
) -> FileRead:
    """A file's text; binary files and files over the size cap come without content."""
    return await browse.file(ref, path)


@router.get("/{repository_id}/scripts", response_model=ScriptCatalogue)
async def list_scripts(browse: BrowserDep, ref: Ref = None) -> ScriptCatalogue:
    """The runnable scripts at a ref; their ids are what deployments' ``script_ids`` name."""
    return await browse.scripts(ref)
