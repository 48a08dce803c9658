"""Background jobs: sync a provider's job catalogue; periodically sync every provider due."""

from __future__ import annotations

from uuid import UUID

import procrastinate

from shipyard.jobs import context_db, context_settings

blueprint = procrastinate.Blueprint()


@blueprint.task(name="sync_provider", pass_context=True)
async def sync_provider(
    context: procrastinate.JobContext, provider_id: str, tenant_id: str
) -> None:
    from shipyard.cicd.sync import sync_provider as sync

    await sync(
        db=context_db(context),
        settings=context_settings(context),
        tenant_id=UUID(tenant_id),
        provider_id=UUID(provider_id),
    )


@blueprint.periodic(cron="* * * * *")
@blueprint.task(name="sync_due_providers", pass_context=True, queueing_lock="cicd_sync_due")
async def sync_due_providers(context: procrastinate.JobContext, timestamp: int) -> None:
    from shipyard.cicd.sync import enqueue_due_syncs

    await enqueue_due_syncs(db=context_db(context), settings=context_settings(context))
