"""CI/CD steps of deployments: validating and recording them, and running one to its end.

The deployment engine calls :func:`prepare_steps` while creating a deployment (inside the
request's transaction) and :func:`run_step` from its worker for each step, in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shipyard.cicd.models import CicdJob, DeploymentCicdMapping
from shipyard.cicd.parameters import secret_names, validate_values
from shipyard.cicd.schemas import CicdStepRequest
from shipyard.cicd.step_run import StepOutcome, StepRunner
from shipyard.config import Settings
from shipyard.crypto import is_sealed, seal
from shipyard.db import Database, session_keyring
from shipyard.errors import ValidationFailed
from shipyard.outbound.client import build_http_client

Emit = Callable[[str, str], Awaitable[None]]


def validate_step_parameters(
    job: CicdJob, values: dict[str, Any], *, field_prefix: str = "parameters"
) -> dict[str, Any]:
    """Check ``values`` against ``job``'s parameter definitions; return them normalised.

    Defaults of omitted parameters are filled in (never a password's). Raises ValidationFailed
    with ``field="<field_prefix>.<name>"`` for an unknown name, a wrong type, a value outside
    the choices or a missing required value; :func:`prepare_steps` passes
    ``cicd_steps.<i>.parameters`` as the prefix.
    """
    return validate_values(job.parameters or [], values, field_prefix=field_prefix)


async def prepare_steps(
    *,
    session: AsyncSession,
    tenant_id: UUID,
    deployment_id: UUID,
    steps: list[CicdStepRequest],
) -> list[DeploymentCicdMapping]:
    """Validate ``steps`` and add one pending mapping row per step (flushed, not committed).

    A ``cicd_job_id`` outside the tenant, or of a job the provider reports disabled, is a 422
    naming ``cicd_steps.<i>.cicd_job_id``;
    password parameter values are stored encrypted. ``position`` is the step's index.
    """
    job_ids = {step.cicd_job_id for step in steps}
    jobs: dict[UUID, CicdJob] = {}
    if job_ids:
        rows = await session.scalars(
            select(CicdJob).where(CicdJob.tenant_id == tenant_id, CicdJob.id.in_(job_ids))
        )
        jobs = {job.id: job for job in rows}
    mappings = []
    for index, step in enumerate(steps):
        job = jobs.get(step.cicd_job_id)
        if job is None:
            raise ValidationFailed(
                f"CI/CD job {step.cicd_job_id} does not exist",
                field=f"cicd_steps.{index}.cicd_job_id",
                code="not_found",
            )
        if not job.buildable:
            raise ValidationFailed(
                f"CI/CD job '{job.path or job.name}' is disabled in its provider; "
                "enable it there and sync the provider",
                field=f"cicd_steps.{index}.cicd_job_id",
                code="cicd_job_disabled",
            )
        values = validate_step_parameters(
            job, step.parameters, field_prefix=f"cicd_steps.{index}.parameters"
        )
        secrets = secret_names(job.parameters or [])
        stored = {
            name: seal(str(value), session_keyring(session))
            if name in secrets and not is_sealed(value)
            else value
            for name, value in values.items()
        }
        mapping = DeploymentCicdMapping(
            tenant_id=tenant_id,
            deployment_id=deployment_id,
            cicd_job_id=job.id,
            parameters=stored,
            status="pending",
            stage=step.stage,
            position=index,
        )
        session.add(mapping)
        mappings.append(mapping)
    await session.flush()
    return mappings


async def run_step(
    *,
    db: Database,
    settings: Settings,
    mapping_id: UUID,
    tenant_id: UUID,
    emit: Emit,
    should_cancel: Callable[[], bool],
    http: httpx.AsyncClient | None = None,
) -> StepOutcome:
    """Trigger the mapping's job and follow it to the end; return 'success', 'failed' or 'cancelled'.

    The outcome compares equal to that status and also names the job and the reason
    (``outcome.summary``), for the deployment's own error. Pass the process's ``http`` client;
    without one, a client is built for this step.

    Progress (status, build number and link, timestamps, error) is committed on the mapping as it
    happens. Console lines go to ``emit("INFO", line)``; Shipyard's own events use INFO, WARNING
    or ERROR. Credentials and password parameter values are masked from every line. When the
    mapping already has a triggered build (a worker restarted), that build is followed instead of
    triggering another; a mapping already final returns its status unchanged. ``should_cancel``
    is checked between polls: the build is aborted and the step ends 'cancelled'.
    """
    runner = StepRunner(
        db=db,
        settings=settings,
        mapping_id=mapping_id,
        tenant_id=tenant_id,
        emit=emit,
        should_cancel=should_cancel,
    )
    if http is not None:
        return await runner.run(http)
    async with build_http_client(settings) as own_http:
        return await runner.run(own_http)
