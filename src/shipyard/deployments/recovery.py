"""Finish deployments whose worker was lost (killed, machine gone): heartbeats went stale."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.logs import notify_deployment
from shipyard.deployments.models import Deployment, DeploymentLog, DeploymentScript

logger = logging.getLogger(__name__)


async def recover_lost_deployments(*, db: Database, settings: Settings) -> list[UUID]:
    """Mark unfinished scripts of stale in-progress deployments failed and finish them."""
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.worker_lost_after_seconds)
    recovered: list[UUID] = []
    # System scope: the sweep looks across tenants; each row is then written for its own tenant.
    async with db.session(system=True) as session:
        stale = (
            await session.execute(
                select(Deployment.id, Deployment.tenant_id)
                .where(Deployment.status == "in_progress", Deployment.heartbeat_at < cutoff)
                .with_for_update(skip_locked=True)
                .limit(100)
            )
        ).all()
        for deployment_id, tenant_id in stale:
            await _finish_lost(session, deployment_id=deployment_id, tenant_id=tenant_id)
            recovered.append(deployment_id)
    for deployment_id in recovered:
        logger.warning("deployment %s: worker lost, finished by the sweep", deployment_id)
    return recovered


async def _finish_lost(session: AsyncSession, *, deployment_id: UUID, tenant_id: UUID) -> None:
    deployment = await session.get(Deployment, deployment_id)
    assert deployment is not None
    now = datetime.now(UTC)
    message = (
        f"Worker {deployment.worker_id or 'unknown'} was lost (no heartbeat since "
        f"{deployment.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); its unfinished scripts are marked failed."
    )
    await session.execute(
        update(DeploymentScript)
        .where(
            DeploymentScript.deployment_id == deployment_id,
            DeploymentScript.status.in_(("pending", "running")),
        )
        .values(status="failed", error="worker lost", completed_at=now)
    )
    hosts_total = len(deployment.host_ids)
    succeeded = await _hosts_succeeded(session, deployment_id)
    status = (
        "partial"
        if 0 < succeeded < hosts_total
        else ("success" if hosts_total and succeeded == hosts_total else "failed")
    )
    if status == "success":
        # Every script had finished; only the final bookkeeping was lost.
        message = (
            f"Worker {deployment.worker_id or 'unknown'} was lost after every script finished."
        )
    session.add(
        DeploymentLog(
            deployment_id=deployment_id, tenant_id=tenant_id, level="ERROR", message=message
        )
    )
    deployment.status = status
    deployment.completed_at = now
    deployment.error = "worker lost"
    await notify_deployment(session, deployment_id)


async def _hosts_succeeded(session: AsyncSession, deployment_id: UUID) -> int:
    per_host = (
        select(DeploymentScript.host_id)
        .where(DeploymentScript.deployment_id == deployment_id)
        .group_by(DeploymentScript.host_id)
        .having(func.bool_and(DeploymentScript.status == "success"))
    ).subquery()
    return int(await session.scalar(select(func.count()).select_from(per_host)) or 0)
