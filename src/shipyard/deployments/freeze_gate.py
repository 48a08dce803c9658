"""The freeze check a run goes through again when a worker starts it.

A run is checked against the freeze windows when it is created, at its start time (now, or
its ``scheduled_time``). A run that waits (a "later" run, a schedule's queued run, a run
waiting for its approvals) can reach its start inside a window created or begun since: the
worker checks again right after claiming it, and such a run ends ``cancelled`` with the window
named in its error and its log, never started. A run an admin let through a window with an
override (``freeze_override_reason``) is not checked again.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.deployments.models import Deployment, DeploymentLog
from shipyard.freeze import service as freeze


async def frozen_at_start(
    session: AsyncSession, deployment: Deployment, *, now: datetime
) -> str | None:
    """Why ``deployment`` must not start at ``now`` (a log line is added), or None."""
    if deployment.freeze_override_reason is not None:
        return None
    groups = (deployment.target or {}).get("group_ids") or []
    found = await freeze.window_in_force(
        session=session,
        tenant_id=deployment.tenant_id,
        at=now,
        template_id=deployment.template_id,
        host_ids=list(deployment.host_ids),
        target_group_ids=[UUID(str(group)) for group in groups],
    )
    if found is None:
        return None
    window, occurrence = found
    why = freeze.Frozen(window, occurrence).reason
    message = f"Not started: {why} (checked when the run was about to start)."
    session.add(
        DeploymentLog(
            deployment_id=deployment.id,
            tenant_id=deployment.tenant_id,
            level="WARNING",
            message=message,
        )
    )
    return message
