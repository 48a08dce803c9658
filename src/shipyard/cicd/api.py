"""Routes: CI/CD providers, their job catalogue, and deployment CI/CD steps."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor, Principal
from shipyard.cicd import actions, flows, service
from shipyard.cicd.schemas import (
    JobRead,
    MappingRead,
    ProviderCheck,
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
    SyncQueued,
)
from shipyard.deps import RuntimeDep, SessionDep, acting, require
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter()

Reader = Annotated[Principal, require(Permission.READ)]
Manager = Annotated[Actor, acting(Permission.MANAGE_CICD)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


@router.get("/cicd-providers", response_model=Page[ProviderRead], tags=["cicd"])
async def list_providers(
    principal: Reader, session: SessionDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[ProviderRead]:
    providers, next_cursor = await service.list_providers(
        session=session, principal=principal, limit=limit, cursor=cursor
    )
    items = await service.read_providers(session=session, providers=providers)
    return Page[ProviderRead](items=items, next_cursor=next_cursor)


@router.post(
    "/cicd-providers",
    response_model=ProviderRead,
    status_code=status.HTTP_201_CREATED,
    tags=["cicd"],
)
async def create_provider(
    data: ProviderCreate, actor: Manager, runtime: RuntimeDep
) -> ProviderRead:
    """Connect Jenkins, GitHub Actions or CircleCI; credentials are stored encrypted."""
    return await flows.create_provider(runtime=runtime, actor=actor, data=data)


@router.get("/cicd-providers/{provider_id}", response_model=ProviderRead, tags=["cicd"])
async def get_provider(provider_id: UUID, principal: Reader, session: SessionDep) -> ProviderRead:
    provider = await service.get_provider(
        session=session, principal=principal, provider_id=provider_id
    )
    return (await service.read_providers(session=session, providers=[provider]))[0]


@router.patch("/cicd-providers/{provider_id}", response_model=ProviderRead, tags=["cicd"])
async def update_provider(
    provider_id: UUID,
    data: ProviderUpdate,
    actor: Manager,
    runtime: RuntimeDep,
) -> ProviderRead:
    """Change the sent fields; a new URL needs the credentials again in the same request."""
    return await flows.update_provider(
        runtime=runtime, actor=actor, provider_id=provider_id, data=data
    )


@router.delete(
    "/cicd-providers/{provider_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["cicd"]
)
async def delete_provider(provider_id: UUID, actor: Manager, session: SessionDep) -> Response:
    """Remove the provider and its jobs; steps that used them keep their history."""
    await actions.delete_provider(session=session, actor=actor, provider_id=provider_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/cicd-providers/{provider_id}/test", response_model=ProviderCheck, tags=["cicd"])
async def test_provider(provider_id: UUID, actor: Manager, runtime: RuntimeDep) -> ProviderCheck:
    """Check credentials and reachability; ``ok`` is false, with the provider's reason, on failure."""
    return await flows.check_provider(runtime=runtime, actor=actor, provider_id=provider_id)


@router.post(
    "/cicd-providers/{provider_id}/sync",
    response_model=SyncQueued,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["cicd"],
)
async def sync_provider(provider_id: UUID, actor: Manager, session: SessionDep) -> SyncQueued:
    """Refresh the job catalogue in the background."""
    return await actions.request_sync(session=session, actor=actor, provider_id=provider_id)


@router.get("/cicd-jobs", response_model=Page[JobRead], tags=["cicd"])
async def list_jobs(
    principal: Reader,
    session: SessionDep,
    provider_id: UUID | None = None,
    search: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[JobRead]:
    jobs, next_cursor = await service.list_jobs(
        session=session,
        principal=principal,
        provider_id=provider_id,
        search=search,
        limit=limit,
        cursor=cursor,
    )
    return Page[JobRead](
        items=[JobRead.model_validate(job) for job in jobs], next_cursor=next_cursor
    )


@router.get("/cicd-jobs/{job_id}", response_model=JobRead, tags=["cicd"])
async def get_job(job_id: UUID, principal: Reader, session: SessionDep) -> JobRead:
    return JobRead.model_validate(
        await service.get_job(session=session, principal=principal, job_id=job_id)
    )


@router.get("/cicd-mappings/{mapping_id}", response_model=MappingRead, tags=["cicd"])
async def get_mapping(mapping_id: UUID, principal: Reader, session: SessionDep) -> MappingRead:
    """One CI/CD step: status, build number and link, error, timestamps."""
    return await service.get_mapping(session=session, principal=principal, mapping_id=mapping_id)
