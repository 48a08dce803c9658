"""Background jobs: run a deployment, and a pool's part of one; sweep deployments whose worker
was lost; prune finished runs' logs by their tenant's retention policy."""

from __future__ import annotations

from uuid import UUID

from shipyard.deployments.deployment_run import DeploymentPart, DeploymentRun
from shipyard.deployments.recovery import recover_lost_deployments
from shipyard.deployments.retention import RetentionDefaults, prune_logs
from shipyard.jobs import JobRun, TaskSet

tasks = TaskSet("deployments")


@tasks.task("run_deployment", retry_when_stalled=True)
async def run_deployment(job: JobRun, deployment_id: str, tenant_id: str) -> None:
    run = DeploymentRun(
        runtime=job.runtime,
        deployment_id=UUID(deployment_id),
        tenant_id=UUID(tenant_id),
        worker_id=f"{job.worker_name}#{job.job_id}",
        heartbeats=job.extras["heartbeats"],
        pools=job.extras.get("pools", frozenset()),
    )
    await run.run()


@tasks.task("run_part")
async def run_part(
    job: JobRun,
    deployment_id: str,
    tenant_id: str,
    pool: str,
    host_ids: list[str],
    coordinator_id: str,
) -> None:
    """Run one pool's hosts of a deployment (queued on ``pool:<name>`` by its coordinator)."""
    part = DeploymentPart(
        runtime=job.runtime,
        deployment_id=UUID(deployment_id),
        tenant_id=UUID(tenant_id),
        worker_id=f"{job.worker_name}#{job.job_id}",
        heartbeats=job.extras["heartbeats"],
        pool=pool,
        host_ids=[UUID(host_id) for host_id in host_ids],
        coordinator_id=coordinator_id,
    )
    await part.run()


@tasks.task(
    "recover_lost_deployments", queueing_lock="recover_lost_deployments", periodic="* * * * * */5"
)
async def recover_lost(job: JobRun, timestamp: int) -> None:
    await recover_lost_deployments(runtime=job.runtime)


@tasks.task("prune_logs", queueing_lock="prune_logs", periodic="41 2 * * *")
async def prune_logs_daily(job: JobRun, timestamp: int) -> None:
    """Daily: delete finished runs' log lines their tenant's policy (or, where the tenant has
    none, the installation's) no longer keeps."""
    await prune_logs(
        db=job.runtime.db,
        now=job.runtime.clock.now(),
        defaults=RetentionDefaults.of(job.runtime.settings),
    )
