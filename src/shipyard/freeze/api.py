"""Routes: freeze windows (CRUD for admins, readable by every member) and which are in force."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deps import CurrentUser, RuntimeDep, SessionDep, acting
from shipyard.errors import ValidationFailed
from shipyard.freeze import service
from shipyard.freeze.schemas import (
    ActiveWindows,
    FreezeWindowCreate,
    FreezeWindowRead,
    FreezeWindowUpdate,
)
from shipyard.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/freeze-windows", tags=["freeze-windows"])
Admin = Annotated[Actor, acting(Permission.MANAGE_FREEZE_WINDOWS)]


@router.get("", response_model=Page[FreezeWindowRead])
async def list_windows(
    principal: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[FreezeWindowRead]:
    """The tenant's freeze windows, newest first, each with its occurrence in force and next."""
    items, next_cursor = await service.list_windows(
        session=session, limit=limit, cursor=cursor, now=runtime.clock.now()
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post("", response_model=FreezeWindowRead, status_code=status.HTTP_201_CREATED)
async def create_window(
    data: FreezeWindowCreate, actor: Admin, session: SessionDep, runtime: RuntimeDep
) -> FreezeWindowRead:
    """A period closed to deployments: recurring (cron start, duration, zone) or fixed dates,
    optionally only for some templates or host groups."""
    return await service.create_window(
        session=session, actor=actor, data=data, now=runtime.clock.now()
    )


@router.get("/active", response_model=ActiveWindows)
async def active_windows(
    principal: CurrentUser,
    session: SessionDep,
    runtime: RuntimeDep,
    active_at: datetime | None = None,
    count: Annotated[int, Query(ge=1, le=service.MAX_UPCOMING)] = 10,
) -> ActiveWindows:
    """The windows in force now (or at ``active_at``) and the next occurrences of each."""
    if active_at is not None and active_at.tzinfo is None:
        raise ValidationFailed("active_at needs a time zone offset", field="active_at")
    return await service.active_windows(
        session=session,
        tenant_id=principal.tenant_id,
        at=active_at or runtime.clock.now(),
        count=count,
    )


@router.get("/{freeze_window_id}", response_model=FreezeWindowRead)
async def get_window(
    freeze_window_id: UUID, principal: CurrentUser, session: SessionDep, runtime: RuntimeDep
) -> FreezeWindowRead:
    return await service.read_window(
        session=session, window_id=freeze_window_id, now=runtime.clock.now()
    )


@router.patch("/{freeze_window_id}", response_model=FreezeWindowRead)
async def update_window(
    freeze_window_id: UUID,
    data: FreezeWindowUpdate,
    actor: Admin,
    session: SessionDep,
    runtime: RuntimeDep,
) -> FreezeWindowRead:
    """Change the fields sent."""
    return await service.update_window(
        session=session,
        actor=actor,
        window_id=freeze_window_id,
        data=data,
        now=runtime.clock.now(),
    )


@router.delete("/{freeze_window_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_window(freeze_window_id: UUID, actor: Admin, session: SessionDep) -> Response:
    await service.delete_window(session=session, actor=actor, window_id=freeze_window_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
