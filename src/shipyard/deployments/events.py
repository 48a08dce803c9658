"""A deployment's notification events (started, succeeded, failed, partial, cancelled), with
the facts a message carries: name, status, who or what triggered it, the commit, the failed
hosts with their exit codes, the page's path. Emitted in the transaction that records the state.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.accounts.models import User
from shipyard.deployments.models import Deployment, DeploymentScript
from shipyard.hosts.models import Host
from shipyard.notifications.events import Event, FailedHost, emit

# A run's final status -> its event (interrupted runs are resumed or failed later: no event).
FINISHED_EVENTS = {
    "success": "deployment.succeeded",
    "failed": "deployment.failed",
    "partial": "deployment.partial",
    "cancelled": "deployment.cancelled",
}
MAX_FAILED_HOSTS = 50


async def _triggered_by(session: AsyncSession, deployment: Deployment) -> str:
    launched = deployment.launched_by or {}
    if launched.get("kind"):
        name = str(launched.get("name") or launched.get("id") or "")
        if launched["kind"] == "user" and name:
            return name
        return f"{launched['kind']} {name}".strip()
    if deployment.created_by is not None:
        email = await session.scalar(select(User.email).where(User.id == deployment.created_by))
        if email:
            return str(email)
    return deployment.trigger


async def _failed_hosts(session: AsyncSession, deployment_id: UUID) -> tuple[FailedHost, ...]:
    """Each host with a failed script: its first failure's exit code (or error)."""
    rows = await session.execute(
        select(Host.name, DeploymentScript.exit_code, DeploymentScript.error)
        .join(Host, Host.id == DeploymentScript.host_id)
        .where(
            DeploymentScript.deployment_id == deployment_id,
            DeploymentScript.status == "failed",
        )
        .order_by(Host.name, DeploymentScript.position)
    )
    found: dict[str, FailedHost] = {}
    for name, exit_code, error in rows:
        if name not in found and len(found) < MAX_FAILED_HOSTS:
            found[name] = FailedHost(name=name, exit_code=exit_code, error=error)
    return tuple(found.values())


async def emit_deployment_event(
    session: AsyncSession, deployment: Deployment, name: str, *, detail: str | None = None
) -> int:
    """Emit ``name`` for ``deployment`` (its row as the caller's transaction sees it)."""
    failed = (
        await _failed_hosts(session, deployment.id)
        if name in ("deployment.failed", "deployment.partial")
        else ()
    )
    return await emit(
        session,
        Event(
            name=name,
            tenant_id=deployment.tenant_id,
            subject_type="deployment",
            subject_id=deployment.id,
            title=deployment.name,
            status=deployment.status,
            triggered_by=await _triggered_by(session, deployment),
            commit_sha=deployment.commit_sha,
            ref=deployment.ref,
            template_id=deployment.template_id,
            repository_id=deployment.repository_id,
            failed_hosts=failed,
            path=f"/deployments/{deployment.id}",
            detail=detail or deployment.error,
        ),
    )


async def emit_finished(session: AsyncSession, deployment_id: UUID) -> None:
    """The finished event of a run whose final status this transaction just wrote."""
    deployment = await session.scalar(
        select(Deployment)
        .where(Deployment.id == deployment_id)
        .execution_options(populate_existing=True)
    )
    if deployment is None or deployment.status not in FINISHED_EVENTS:
        return
    await emit_deployment_event(session, deployment, FINISHED_EVENTS[deployment.status])
