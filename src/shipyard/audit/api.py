"""Routes: the audit trail: reading, export, streams, retention (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.audit import flows, service
from shipyard.audit.export import MEDIA_TYPES, export_entries
from shipyard.audit.schemas import (
    AuditEntryRead,
    AuditFilters,
    Outcome,
    RetentionRead,
    RetentionUpdate,
    StreamCreate,
    StreamCreated,
    StreamRead,
    StreamUpdate,
)
from shipyard.deps import RuntimeDep, SessionDep, SettingsDep, acting
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Actor, acting(Permission.MANAGE_AUDIT)]


def audit_filters(
    actor_id: UUID | None = None,
    action: Annotated[
        str | None,
        Query(max_length=200, description="An action (host.create), or a prefix ending in '.'"),
    ] = None,
    resource_type: Annotated[str | None, Query(max_length=100)] = None,
    resource_id: UUID | None = None,
    outcome: Outcome | None = None,
    since: Annotated[datetime | None, Query(description="Entries at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Entries before (ISO 8601)")] = None,
) -> AuditFilters:
    return AuditFilters(
        actor_id=actor_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        since=since,
        until=until,
    )


FiltersDep = Annotated[AuditFilters, Depends(audit_filters)]


@router.get("", response_model=Page[AuditEntryRead])
async def list_audit(
    actor: Auditor,
    session: SessionDep,
    filters: FiltersDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[AuditEntryRead]:
    """The tenant's audit entries, newest first, filtered."""
    items, next_cursor = await service.list_entries(
        session=session, filters=filters, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
async def export_audit(
    actor: Auditor,
    runtime: RuntimeDep,
    filters: FiltersDep,
    format: Literal["csv", "jsonl"] = "jsonl",
) -> StreamingResponse:
    """The filtered entries as a file, oldest first: CSV (with a header) or JSON lines."""
    service.check_filters(filters)  # a 422 now: once streaming, the status is sent
    return StreamingResponse(
        export_entries(db=runtime.db, principal=actor.principal, filters=filters, fmt=format),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="shipyard-audit.{format}"'},
    )


@router.get("/entries/{entry_id}", response_model=AuditEntryRead)
async def read_audit_entry(entry_id: UUID, actor: Auditor, session: SessionDep) -> AuditEntryRead:
    return await service.read_entry(session=session, entry_id=entry_id)


@router.get("/settings", response_model=RetentionRead)
async def read_audit_settings(
    actor: Auditor, session: SessionDep, settings: SettingsDep
) -> RetentionRead:
    """How long entries are kept: the tenant's period, or the installation's default."""
    return await service.read_retention(
        session=session, actor=actor, default_days=settings.audit_retention_days
    )


@router.put("/settings", response_model=RetentionRead)
async def update_audit_settings(
    data: RetentionUpdate, actor: Auditor, session: SessionDep, settings: SettingsDep
) -> RetentionRead:
    """Set the tenant's retention period in days (null: the installation's default)."""
    return await service.set_retention(
        session=session, actor=actor, data=data, default_days=settings.audit_retention_days
    )


@router.get("/streams", response_model=list[StreamRead])
async def list_audit_streams(actor: Auditor, session: SessionDep) -> list[StreamRead]:
    return await service.list_streams(session=session)


@router.post("/streams", response_model=StreamCreated, status_code=status.HTTP_201_CREATED)
async def create_audit_stream(
    data: StreamCreate, actor: Auditor, runtime: RuntimeDep
) -> StreamCreated:
    """Stream new entries to syslog ``{host, port, protocol: udp|tcp, app_name}`` or a webhook
    ``{url}`` (its signing secret is answered once)."""
    return await flows.create_stream(runtime=runtime, actor=actor, data=data)


@router.get("/streams/{stream_id}", response_model=StreamRead)
async def read_audit_stream(stream_id: UUID, actor: Auditor, session: SessionDep) -> StreamRead:
    return await service.read_stream(session=session, stream_id=stream_id)


@router.patch("/streams/{stream_id}", response_model=StreamRead)
async def update_audit_stream(
    stream_id: UUID, data: StreamUpdate, actor: Auditor, runtime: RuntimeDep
) -> StreamRead:
    return await flows.update_stream(runtime=runtime, actor=actor, stream_id=stream_id, data=data)


@router.delete("/streams/{stream_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_audit_stream(stream_id: UUID, actor: Auditor, session: SessionDep) -> Response:
    await service.delete_stream(session=session, actor=actor, stream_id=stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
