"""Routes: deployments, their scripts, logs (paged and live) and control actions."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.cicd.schemas import MappingRead
from shipyard.deployments import flows, service
from shipyard.deployments.schemas import (
    DeploymentCreate,
    DeploymentLogRead,
    DeploymentRead,
    DeploymentScriptRead,
    DeploymentStatus,
    DeploymentUpdate,
    LogPage,
)
from shipyard.deployments.stream import open_log_stream
from shipyard.deps import (
    BroadcasterDep,
    CurrentUser,
    DatabaseDep,
    RuntimeDep,
    SessionDep,
    acting,
)
from shipyard.errors import ValidationFailed
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/deployments", tags=["deployments"])
Runner = Annotated[Actor, acting(Permission.RUN_DEPLOYMENTS)]


@router.get("", response_model=Page[DeploymentRead])
async def list_deployments(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    status_filter: Annotated[DeploymentStatus | None, Query(alias="status")] = None,
    repository_id: UUID | None = None,
    host_id: UUID | None = None,
    created_by: UUID | None = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
    template_id: UUID | None = None,
) -> Page[DeploymentRead]:
    rows, next_cursor = await service.list_deployments(
        session=session,
        limit=limit,
        cursor=cursor,
        status=status_filter,
        repository_id=repository_id,
        host_id=host_id,
        created_by=created_by,
        search=search,
        template_id=template_id,
    )
    return Page(items=[service.to_read(row) for row in rows], next_cursor=next_cursor)


@router.post("", response_model=DeploymentRead, status_code=status.HTTP_201_CREATED)
async def create_deployment(
    data: DeploymentCreate, actor: Runner, runtime: RuntimeDep
) -> DeploymentRead:
    """Create a deployment; it is queued in the same transaction and runs now or at scheduled_time."""
    # A flow: it reads the script catalogue over the network, so this route holds no session.
    return await flows.create_deployment(runtime=runtime, actor=actor, data=data)


@router.get("/{deployment_id}", response_model=DeploymentRead)
async def get_deployment(
    deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> DeploymentRead:
    """One deployment, with its approvers' decisions when it needed approval."""
    return await service.read_deployment(session=session, deployment_id=deployment_id)


@router.get("/{deployment_id}/cicd-mappings", response_model=list[MappingRead], tags=["cicd"])
async def list_cicd_steps(
    deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> list[MappingRead]:
    """The deployment's CI/CD steps in order, with their live status."""
    return await service.list_cicd_steps(
        session=session, principal=principal, deployment_id=deployment_id
    )


@router.patch("/{deployment_id}", response_model=DeploymentRead)
async def update_deployment(
    deployment_id: UUID, data: DeploymentUpdate, actor: Runner, session: SessionDep
) -> DeploymentRead:
    """Rename, describe, or reschedule a deployment that has not started."""
    deployment = await service.update_deployment(
        session=session, actor=actor, deployment_id=deployment_id, data=data
    )
    return service.to_read(deployment)


@router.delete("/{deployment_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(deployment_id: UUID, actor: Runner, session: SessionDep) -> Response:
    await service.delete_deployment(session=session, actor=actor, deployment_id=deployment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{deployment_id}/cancel", response_model=DeploymentRead)
async def cancel_deployment(
    deployment_id: UUID, actor: Runner, session: SessionDep
) -> DeploymentRead:
    deployment = await service.cancel_deployment(
        session=session, actor=actor, deployment_id=deployment_id
    )
    return service.to_read(deployment)


@router.post(
    "/{deployment_id}/rerun", response_model=DeploymentRead, status_code=status.HTTP_201_CREATED
)
async def rerun_deployment(
    deployment_id: UUID, actor: Runner, runtime: RuntimeDep
) -> DeploymentRead:
    return await flows.rerun_deployment(runtime=runtime, actor=actor, deployment_id=deployment_id)


@router.get("/{deployment_id}/scripts", response_model=list[DeploymentScriptRead])
async def list_scripts(
    deployment_id: UUID, principal: CurrentUser, session: SessionDep
) -> list[DeploymentScriptRead]:
    rows = await service.list_scripts(session=session, deployment_id=deployment_id)
    return [DeploymentScriptRead.model_validate(row) for row in rows]


@router.get("/{deployment_id}/logs", response_model=LogPage)
async def list_logs(
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    host_id: UUID | None = None,
    deployment_script_id: UUID | None = None,
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None,
    search: Annotated[str | None, Query(max_length=500)] = None,
) -> LogPage:
    """Stored log lines, oldest first; page with ``cursor``."""
    after_seq = _parse_seq(cursor, field="cursor")
    rows = await service.list_logs(
        session=session,
        deployment_id=deployment_id,
        after_seq=after_seq,
        limit=limit,
        host_id=host_id,
        deployment_script_id=deployment_script_id,
        level=level,
        search=search,
    )
    items = [DeploymentLogRead.model_validate(row) for row in rows]
    return LogPage(items=items, next_cursor=str(items[-1].seq) if len(items) == limit else None)


_MAX_SEQ = 2**63 - 1  # log sequence numbers are PostgreSQL bigints


def _parse_seq(value: str | None, *, field: str) -> int | None:
    if value is None or value == "":
        return None
    # ASCII digits only: str.isdigit() also accepts superscripts and Arabic-Indic digits.
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_SEQ:
        raise ValidationFailed(
            f"{field} must be a log sequence number (0 to {_MAX_SEQ})", field=field
        )
    return int(value)


@router.get("/{deployment_id}/logs/stream", response_class=StreamingResponse)
async def stream_deployment_logs(
    deployment_id: UUID,
    principal: CurrentUser,
    db: DatabaseDep,
    broadcaster: BroadcasterDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[str | None, Query(description="Resume after this log sequence number")] = None,
) -> StreamingResponse:
    """Server-Sent Events: `log` events (id = sequence number), then one `end` event with the status."""
    after_seq = (
        _parse_seq(last_event_id, field="Last-Event-ID") or _parse_seq(after, field="after") or 0
    )
    events = await open_log_stream(
        db=db,
        broadcaster=broadcaster,
        principal=principal,
        deployment_id=deployment_id,
        after_seq=after_seq,
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
