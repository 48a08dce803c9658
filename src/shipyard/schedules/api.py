"""Routes: schedules on templates (CRUD, pause/resume, next fire times, fire history)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.cron import MAX_COUNT
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page
from shipyard.schedules import service
from shipyard.schedules.schemas import (
    FireRead,
    NextTimes,
    PreviewRequest,
    ScheduleCreate,
    ScheduleRead,
    ScheduleUpdate,
)

router = APIRouter(prefix="/schedules", tags=["schedules"])
# POST /templates/{id}/schedules: a schedule is part of its template.
templates_router = APIRouter(prefix="/templates", tags=["schedules"])
Editor = Annotated[Actor, acting(Permission.MANAGE_TEMPLATES)]


@templates_router.post(
    "/{template_id}/schedules", response_model=ScheduleRead, status_code=status.HTTP_201_CREATED
)
async def create_schedule(
    template_id: UUID,
    data: ScheduleCreate,
    actor: Editor,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ScheduleRead:
    """Schedule the template: a cron line in a time zone, values for its parameters, policies."""
    return await service.create_schedule(
        session=session,
        actor=actor,
        template_id=template_id,
        data=data,
        now=runtime.clock.now(),
    )


@router.get("", response_model=Page[ScheduleRead])
async def list_schedules(
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
    template_id: UUID | None = None,
) -> Page[ScheduleRead]:
    """The tenant's schedules, newest first, with the cron line in words and the next run."""
    items, next_cursor = await service.list_schedules(
        session=session, limit=limit, cursor=cursor, template_id=template_id
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post("/preview", response_model=NextTimes)
async def preview_schedule(data: PreviewRequest, actor: Editor, runtime: RuntimeDep) -> NextTimes:
    """The next fire times of a cron line before it is saved, in its zone and in UTC."""
    return service.preview(data=data, now=runtime.clock.now())


@router.get("/{schedule_id}", response_model=ScheduleRead)
async def get_schedule(
    schedule_id: UUID, principal: CurrentUser, session: SessionDep
) -> ScheduleRead:
    return await service.read_schedule(session=session, schedule_id=schedule_id)


@router.patch("/{schedule_id}", response_model=ScheduleRead)
async def update_schedule(
    schedule_id: UUID,
    data: ScheduleUpdate,
    actor: Editor,
    session: SessionDep,
    runtime: RuntimeDep,
) -> ScheduleRead:
    """Change the fields sent; a secret parameter sent as *** keeps its value."""
    return await service.update_schedule(
        session=session,
        actor=actor,
        schedule_id=schedule_id,
        data=data,
        now=runtime.clock.now(),
    )


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(schedule_id: UUID, actor: Editor, session: SessionDep) -> Response:
    """Delete the schedule and its fire history; the runs it started stay."""
    await service.delete_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{schedule_id}/next", response_model=NextTimes)
async def next_fire_times(
    schedule_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
    count: Annotated[int, Query(ge=1, le=MAX_COUNT)] = 10,
) -> NextTimes:
    """The next fire times, ISO 8601 in the schedule's zone (with its offset) and in UTC."""
    return await service.next_fire_times(
        session=session, schedule_id=schedule_id, count=count, now=runtime.clock.now()
    )


@router.post("/{schedule_id}/pause", response_model=ScheduleRead)
async def pause_schedule(schedule_id: UUID, actor: Editor, session: SessionDep) -> ScheduleRead:
    return await service.pause_schedule(session=session, actor=actor, schedule_id=schedule_id)


@router.post("/{schedule_id}/resume", response_model=ScheduleRead)
async def resume_schedule(
    schedule_id: UUID, actor: Editor, session: SessionDep, runtime: RuntimeDep
) -> ScheduleRead:
    """Fire again from the next time after now (times while paused are not caught up)."""
    return await service.resume_schedule(
        session=session, actor=actor, schedule_id=schedule_id, now=runtime.clock.now()
    )


@router.get("/{schedule_id}/fires", response_model=Page[FireRead])
async def list_fires(
    schedule_id: UUID,
    principal: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[FireRead]:
    """Each fire with its verdict (ran, queued, skipped, missed, failed), reason and run."""
    items, next_cursor = await service.list_fires(
        session=session, schedule_id=schedule_id, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)
