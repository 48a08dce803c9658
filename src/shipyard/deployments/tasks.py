"""Background jobs: run a deployment; sweep deployments whose worker was lost."""

from __future__ import annotations

import procrastinate

from shipyard.jobs import context_db, context_settings

blueprint = procrastinate.Blueprint()


@blueprint.task(name="run_deployment", pass_context=True)
async def run_deployment(
    context: procrastinate.JobContext, deployment_id: str, tenant_id: str
) -> None:
    from uuid import UUID

    from shipyard.deployments.runner import DeploymentRunner

    runner = DeploymentRunner(
        db=context_db(context),
        settings=context_settings(context),
        deployment_id=UUID(deployment_id),
        tenant_id=UUID(tenant_id),
        worker_id=f"{context.worker_name}#{context.job.id}",
        heartbeats=context.additional_context["heartbeats"],
    )
    await runner.run()


@blueprint.periodic(cron="* * * * * */5")
@blueprint.task(
    name="recover_lost_deployments", pass_context=True, queueing_lock="recover_lost_deployments"
)
async def recover_lost(context: procrastinate.JobContext, timestamp: int) -> None:
    from shipyard.deployments.recovery import recover_lost_deployments

    await recover_lost_deployments(db=context_db(context), settings=context_settings(context))
