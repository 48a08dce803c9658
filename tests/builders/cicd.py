"""The ``ci`` builder: CI/CD providers connected through the API, their jobs synced, steps run.

``ci`` composes ``client``, ``db``, ``cicd_settings`` and ``admin``; the test passes the body of
the provider it wants (``jenkins_body(jenkins_fake)``, ``github_body(...)``, ``circleci_body(...)``
from tests/fixtures/cicd.py), so only the fakes a test asks for are started::

    job_id = await ci.job(jenkins_body(jenkins_fake), path="team/app/deploy")
    mapping_id = await ci.step(job_id, {"ENV": "production"})
    assert await ci.run(mapping_id, emit) == "success"
    mapping = await ci.mapping(mapping_id)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.cicd.models import DeploymentCicdMapping
from shipyard.cicd.schemas import CicdStepRequest
from shipyard.cicd.step_run import StepOutcome
from shipyard.cicd.steps import prepare_steps, run_step
from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.cicd import EmitRecorder, create_provider, new_deployment, new_step, sync_jobs
from tests.support.api import Account

Emit = Callable[[str, str], Awaitable[None]]


def _never() -> bool:
    return False


@dataclass
class CiBuilder:
    """Sets up CI/CD steps as ``admin`` and runs them in the test, as the deployment does."""

    client: httpx.AsyncClient
    db: Database
    settings: Settings
    admin: Account

    async def provider(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /cicd-providers, checked to answer 201."""
        return await create_provider(self.client, self.admin, body)

    async def jobs(self, provider: dict[str, Any]) -> list[dict[str, Any]]:
        """Sync the provider's jobs now; returns them by path."""
        return await sync_jobs(self.db, self.settings, self.admin, provider["id"])

    async def job(self, body: dict[str, Any], *, path: str | None = None) -> str:
        """Connect a provider, sync it, and return the id of its job at ``path`` (or its first)."""
        jobs = await self.jobs(await self.provider(body))
        job_id: str = next(job["id"] for job in jobs if path is None or job["path"] == path)
        return job_id

    async def step(
        self,
        job_id: str,
        parameters: dict[str, Any] | None = None,
        *,
        deployment_id: UUID | None = None,
    ) -> UUID:
        """A pending step of ``job_id`` (on a new bare deployment unless given); its mapping id."""
        return await new_step(
            self.db, self.admin.tenant_id, job_id, parameters, deployment_id=deployment_id
        )

    async def deployment(self, *, account: Account | None = None) -> UUID:
        """A bare deployment row for steps to hang on (the deployment engine is not involved)."""
        return await new_deployment(self.db, (account or self.admin).tenant_id)

    async def prepare(
        self, deployment_id: UUID, *steps: CicdStepRequest, account: Account | None = None
    ) -> list[DeploymentCicdMapping]:
        """prepare_steps for ``deployment_id`` in one transaction of ``account``'s tenant."""
        tenant_id = UUID((account or self.admin).tenant_id)
        async with self.db.session(tenant_id=tenant_id) as session:
            return await prepare_steps(
                session=session, tenant_id=tenant_id, deployment_id=deployment_id, steps=list(steps)
            )

    async def run(
        self,
        mapping_id: UUID,
        emit: Emit | None = None,
        *,
        should_cancel: Callable[[], bool] = _never,
        settings: Settings | None = None,
    ) -> StepOutcome:
        """run_step to its end (30 s at most); returns its outcome (equal to the final status)."""
        return await asyncio.wait_for(
            run_step(
                db=self.db,
                settings=settings or self.settings,
                mapping_id=mapping_id,
                tenant_id=UUID(self.admin.tenant_id),
                emit=emit or EmitRecorder(),
                should_cancel=should_cancel,
            ),
            timeout=30,
        )

    async def mapping(self, mapping_id: UUID) -> DeploymentCicdMapping:
        """The step's row, read now."""
        async with self.db.session(tenant_id=UUID(self.admin.tenant_id)) as session:
            mapping = await session.get(DeploymentCicdMapping, mapping_id)
            assert mapping is not None
            return mapping

    async def error(self, mapping_id: UUID) -> str:
        """The step's recorded error ("" when none)."""
        return (await self.mapping(mapping_id)).error or ""


@pytest.fixture
def ci(
    client: httpx.AsyncClient, db: Database, cicd_settings: Settings, admin: Account
) -> CiBuilder:
    return CiBuilder(client, db, cicd_settings, admin)
