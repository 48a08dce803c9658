"""Routes: templates (CRUD), launching, preview, runs and roll back."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deployments.schemas import DeploymentRead
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from shipyard.templates import flows, service
from shipyard.templates.schemas import (
    LaunchRequest,
    Preview,
    RollbackRequest,
    TemplateCreate,
    TemplateRead,
    TemplateRun,
    TemplateUpdate,
)

router = APIRouter(prefix="/templates", tags=["templates"])
Editor = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]
# Launching an admin-only template also needs LAUNCH_ADMIN_ONLY_TEMPLATES (checked in the flow).
Launcher = Annotated[Actor, acting(Permission.RUN_DEPLOYMENTS)]


@router.get("", response_model=Page[TemplateRead])
async def list_templates(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    name: Annotated[str | None, Query(max_length=200, description="Exact name.")] = None,
    repository_id: UUID | None = None,
) -> Page[TemplateRead]:
    items, next_cursor = await service.list_templates(
        session=session, limit=limit, cursor=cursor, name=name, repository_id=repository_id
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post("", response_model=TemplateRead, status_code=status.HTTP_201_CREATED)
async def create_template(data: TemplateCreate, actor: Editor, session: SessionDep) -> TemplateRead:
    """Save a template; secret environment values are write-only."""
    return await service.create_template(session=session, actor=actor, data=data)


@router.get("/{template_id}", response_model=TemplateRead)
async def get_template(
    template_id: UUID, principal: CurrentUser, session: SessionDep
) -> TemplateRead:
    return await service.read_template(session=session, template_id=template_id)


@router.patch("/{template_id}", response_model=TemplateRead)
async def update_template(
    template_id: UUID, data: TemplateUpdate, actor: Editor, session: SessionDep
) -> TemplateRead:
    """Change the fields sent; a secret variable sent without ``value`` keeps its value."""
    return await service.update_template(
        session=session, actor=actor, template_id=template_id, data=data
    )


@router.delete("/{template_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_template(template_id: UUID, actor: Editor, session: SessionDep) -> Response:
    """Delete a template; its runs stay."""
    await service.delete_template(session=session, actor=actor, template_id=template_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{template_id}/launch", response_model=DeploymentRead, status_code=status.HTTP_201_CREATED
)
async def launch_template(
    template_id: UUID, data: LaunchRequest, actor: Launcher, runtime: RuntimeDep
) -> DeploymentRead:
    """Launch with parameter values: the ref is resolved to a commit now and the run uses it."""
    # A flow (git resolves the ref): this route holds no session.
    return await flows.launch_template(
        runtime=runtime,
        actor=actor,
        template_id=template_id,
        values=data.parameters,
        freeze_override=data.freeze_override,
        ref=data.ref,
    )


@router.post("/{template_id}/preview", response_model=Preview)
async def preview_template(
    template_id: UUID, data: LaunchRequest, actor: Launcher, runtime: RuntimeDep
) -> Preview:
    """What a launch with these values would run now: commit, scripts, hosts and batches."""
    return await flows.preview_template(
        runtime=runtime,
        actor=actor,
        template_id=template_id,
        values=data.parameters,
        ref=data.ref,
    )


@router.get("/{template_id}/runs", response_model=Page[TemplateRun])
async def list_template_runs(
    template_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[TemplateRun]:
    """The template's runs, newest first: status, commit, duration, trigger, who launched it."""
    items, next_cursor = await service.list_runs(
        session=session, template_id=template_id, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/{template_id}/rollback", response_model=DeploymentRead, status_code=status.HTTP_201_CREATED
)
async def rollback_template(
    template_id: UUID, data: RollbackRequest, actor: Launcher, runtime: RuntimeDep
) -> DeploymentRead:
    """Launch again at the commit, with the values, of an earlier successful run."""
    return await flows.rollback_template(
        runtime=runtime,
        actor=actor,
        template_id=template_id,
        deployment_id=data.deployment_id,
        freeze_override=data.freeze_override,
    )
