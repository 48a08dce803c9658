"""Routes: the tenant's log retention policy and the size of its log (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from shipyard.accounts.permissions import Permission
from shipyard.accounts.principal import Actor
from shipyard.deployments import retention
from shipyard.deployments.retention_schemas import LogRetentionRead, LogRetentionUpdate
from shipyard.deps import SessionDep, SettingsDep, acting

router = APIRouter(prefix="/logs", tags=["logs"])
Admin = Annotated[Actor, acting(Permission.MANAGE_LOG_RETENTION)]


@router.get("/retention", response_model=LogRetentionRead)
async def read_log_retention(
    actor: Admin, session: SessionDep, settings: SettingsDep
) -> LogRetentionRead:
    """The tenant's policy (null: the installation's), the one in force, and the tenant's log
    size: lines counted, bytes estimated."""
    return await retention.read_policy(
        session=session,
        tenant_id=actor.tenant_id,
        defaults=retention.RetentionDefaults.of(settings),
    )


@router.put("/retention", response_model=LogRetentionRead)
async def update_log_retention(
    data: LogRetentionUpdate, actor: Admin, session: SessionDep, settings: SettingsDep
) -> LogRetentionRead:
    """Replace the policy: ``days`` (delete a finished run's log N days after it ended) and
    ``lines`` (keep a finished run's newest N lines); null or absent: the installation's
    default, which keeps everything unless it is set."""
    return await retention.set_policy(
        session=session, actor=actor, data=data, defaults=retention.RetentionDefaults.of(settings)
    )
