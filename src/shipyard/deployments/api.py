"""Routes: deployments, their scripts, logs (paged and live) and control actions."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.cicd.schemas import MappingRead
from shipyard.deployments import flows, log_reads, service
from shipyard.deployments.grid import MAX_PAGE_SIZE, results_grid
from shipyard.deployments.grid_schemas import ResultsRead
from shipyard.deployments.log_export import (
    LogFilter,
    accepts_gzip,
    encoded,
    gzipped,
    open_log_export,
)
from shipyard.deployments.schemas import (
    DeploymentCreate,
    DeploymentRead,
    DeploymentScriptRead,
    DeploymentStatus,
    DeploymentUpdate,
    LogLandmarks,
    LogPage,
    LogRange,
    LogSearchResult,
    LogStream,
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
LogLevelParam = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
_MAX_OFFSET = 2**31 - 1
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
    items, next_cursor = await service.list_deployment_reads(
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
    return Page(items=items, next_cursor=next_cursor)


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


@router.get("/{deployment_id}/logs", response_model=LogPage | LogRange)
async def list_logs(
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    offset: Annotated[
        int | None,
        Query(ge=0, le=_MAX_OFFSET, description="0-based line offset: answer a range instead"),
    ] = None,
    tail: Annotated[bool, Query(description="Answer the last `limit` lines as a range")] = False,
    host_id: UUID | None = None,
    deployment_script_id: UUID | None = None,
    script_id: Annotated[UUID | None, Query(description="A deployment_scripts row")] = None,
    level: LogLevelParam | None = None,
    stream: LogStream | None = None,
    failed_only: bool = False,
    search: Annotated[str | None, Query(max_length=500)] = None,
) -> LogPage | LogRange:
    """Stored log lines, oldest first; page with ``cursor`` (by sequence number), or ask for
    lines by number with ``offset`` or the last ones with ``tail`` (then the answer is a range:
    ``{total, offset, last_seq, lines}``)."""
    if offset is not None or tail:
        if cursor is not None or search is not None:
            field = "offset" if offset is not None else "tail"
            raise ValidationFailed(f"{field} cannot be combined with cursor or search", field=field)
        view = _view(
            host_id, script_id or deployment_script_id, level, stream, failed_only=failed_only
        )
        return await log_reads.read_range(
            session=session,
            deployment_id=deployment_id,
            view=view,
            offset=offset or 0,
            limit=limit,
            tail=tail,
        )
    after_seq = _parse_seq(cursor, field="cursor")
    items = await service.list_log_reads(
        session=session,
        deployment_id=deployment_id,
        after_seq=after_seq,
        limit=limit,
        host_id=host_id,
        deployment_script_id=script_id or deployment_script_id,
        level=level,
        search=search,
    )
    return LogPage(items=items, next_cursor=str(items[-1].seq) if len(items) == limit else None)


def _view(
    host_id: UUID | None,
    script_id: UUID | None,
    level: str | None,
    stream: str | None,
    *,
    failed_only: bool,
) -> log_reads.LogView:
    return log_reads.LogView(
        host_id=host_id, script_id=script_id, level=level, stream=stream, failed_only=failed_only
    )


@router.get("/{deployment_id}/logs/search", response_model=LogSearchResult)
async def search_logs(
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    regex: bool = False,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    host_id: UUID | None = None,
    script_id: Annotated[UUID | None, Query(description="A deployment_scripts row")] = None,
    level: LogLevelParam | None = None,
    stream: LogStream | None = None,
    failed_only: bool = False,
) -> LogSearchResult:
    """Line numbers of the matching lines over the whole log (ILIKE, or ``~*`` with ``regex``)."""
    return await log_reads.search_log(
        session=session,
        deployment_id=deployment_id,
        view=_view(host_id, script_id, level, stream, failed_only=failed_only),
        query=q,
        regex=regex,
        limit=limit,
    )


@router.get("/{deployment_id}/logs/landmarks", response_model=LogLandmarks)
async def log_landmarks(
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    host_id: UUID | None = None,
    script_id: Annotated[UUID | None, Query(description="A deployment_scripts row")] = None,
    level: LogLevelParam | None = None,
    stream: LogStream | None = None,
    failed_only: bool = False,
) -> LogLandmarks:
    """Where to jump: the first ERROR line and the first failed script's first line."""
    return await log_reads.log_landmarks(
        session=session,
        deployment_id=deployment_id,
        view=_view(host_id, script_id, level, stream, failed_only=failed_only),
    )


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


# The results grid and the log download (issue 17, the grid's part) ---------------------------


@router.get("/{deployment_id}/results", response_model=ResultsRead)
async def deployment_results(
    deployment_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    failed_only: bool = False,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 1000,
) -> ResultsRead:
    """The results grid: hosts (by name, a page of them) x scripts, one cell per script run,
    and the progress ("37/200 hosts done, 2 failed")."""
    grid = await results_grid(
        session=session,
        deployment_id=deployment_id,
        failed_only=failed_only,
        offset=offset,
        limit=limit,
    )
    return ResultsRead.from_grid(grid)


@router.get("/{deployment_id}/logs/download", response_class=StreamingResponse)
async def download_deployment_logs(
    deployment_id: UUID,
    principal: CurrentUser,
    db: DatabaseDep,
    host_id: UUID | None = None,
    host: Annotated[str | None, Query(max_length=200, description="A host's name or id")] = None,
    script: Annotated[
        str | None,
        Query(max_length=200, description="A script's name, path, catalogue id or row id"),
    ] = None,
    failed: Annotated[bool, Query(description="Only the failed scripts' lines")] = False,
    grep: Annotated[str | None, Query(max_length=500)] = None,
    regex: Annotated[bool, Query(description="grep is a regular expression")] = False,
    format: Literal["text", "jsonl"] = "text",
    accept_encoding: Annotated[str | None, Header(alias="Accept-Encoding")] = None,
) -> StreamingResponse:
    """The log, streamed as text (``timestamp host [stream] message``) or JSON lines, gzip when
    the client accepts it; the same filters as the grid and ``shipyard deploy logs``."""
    wanted = LogFilter(
        host=str(host_id) if host_id else host,
        script=script,
        failed_only=failed,
        grep=grep,
        regex=regex,
    )
    export = await open_log_export(
        db=db, principal=principal, deployment_id=deployment_id, wanted=wanted, fmt=format
    )
    headers = {
        "Content-Disposition": f'attachment; filename="{export.filename}"',
        "Vary": "Accept-Encoding",
    }
    body = encoded(export.chunks)
    if accepts_gzip(accept_encoding):
        headers["Content-Encoding"] = "gzip"
        body = gzipped(export.chunks)
    media = "application/x-ndjson" if format == "jsonl" else "text/plain; charset=utf-8"
    return StreamingResponse(body, media_type=media, headers=headers)
