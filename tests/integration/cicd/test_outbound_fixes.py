"""CI/CD behaviour fixed with the one outbound layer, checked against the fakes as a user sees it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update

from shipyard.cicd.models import CicdProvider, DeploymentCicdMapping
from shipyard.cicd.sync import enqueue_due_syncs, sync_provider
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.errors import ValidationFailed
from tests.builders.cicd import CiBuilder
from tests.fakes.circleci import FakeCircleCI, PipelineScript, WorkflowSpec
from tests.fakes.github_actions import FakeGitHubActions
from tests.fakes.jenkins import FakeJenkins, Script
from tests.fixtures.cicd import (
    CIRCLE_CONFIG,
    DEPLOY_WORKFLOW,
    EmitRecorder,
    circleci_body,
    create_provider,
    github_body,
    jenkins_body,
)
from tests.support.api import Account, error_fields

# Disabled Jenkins jobs -------------------------------------------------------------------


async def test_disabled_jenkins_jobs_are_marked_in_the_catalogue_and_refused(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("deploy")
    jenkins_fake.add_job("old-deploy", disabled=True)
    provider = await ci.provider(jenkins_body(jenkins_fake))
    jobs = {job["path"]: job for job in await ci.jobs(provider)}

    listed = (await ci.client.get("/api/v1/cicd-jobs", headers=ci.admin.headers)).json()["items"]
    assert {job["path"]: job["buildable"] for job in listed} == {
        "deploy": True,
        "old-deploy": False,
    }
    with pytest.raises(ValidationFailed) as refused:
        await ci.step(jobs["old-deploy"]["id"])
    assert refused.value.field == "cicd_steps.0.cicd_job_id"
    assert refused.value.code == "cicd_job_disabled"
    assert "'old-deploy' is disabled" in refused.value.message
    assert jenkins_fake.seen("POST", "/build") == []


# Step failures name the job and the reason ----------------------------------------------


async def test_a_failed_step_names_its_job_and_the_reason(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "deploy", script=lambda params: Script(chunks=["boom\n"], result="FAILURE")
    )
    mapping_id = await ci.step(await ci.job(jenkins_body(jenkins_fake, name="CI")))

    outcome = await ci.run(mapping_id)

    assert outcome == "failed"
    assert outcome.summary == (
        "CI/CD step CI (deploy) failed: build #1 failed (Jenkins result: FAILURE)"
    )


# Required GitHub inputs --------------------------------------------------------------------


async def test_an_omitted_required_github_input_is_refused_not_guessed(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    jobs = await ci.jobs(await ci.provider(github_body(github_fake)))
    environment = next(p for p in jobs[0]["parameters"] if p["name"] == "environment")
    assert environment["required"] is True and environment["default"] is None

    response = await ci.client.post(
        "/api/v1/deployments",
        headers=ci.admin.headers,
        json={"name": "ship", "cicd_steps": [{"cicd_job_id": jobs[0]["id"]}]},
    )

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["cicd_steps.0.parameters.environment"]
    assert "parameter 'environment' is required" in response.text
    assert github_fake.seen("POST", "/dispatches") == []


# Failing providers back off ------------------------------------------------------------------


async def test_a_failing_provider_backs_off_instead_of_syncing_every_minute(
    client: httpx.AsyncClient,
    db: Database,
    cicd_settings: Settings,
    admin: Account,
    jenkins_fake: FakeJenkins,
) -> None:
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    provider_id = UUID(provider["id"])
    jenkins_fake.revoke()
    settings = cicd_settings.model_copy(
        update={"cicd_sync_retry_minutes": 5, "cicd_sync_interval_minutes": 60}
    )

    for _ in range(2):
        result = await sync_provider(
            db=db, settings=settings, tenant_id=UUID(admin.tenant_id), provider_id=provider_id
        )
        assert not result.ok
    shown = (
        await client.get(f"/api/v1/cicd-providers/{provider['id']}", headers=admin.headers)
    ).json()
    assert shown["sync_failures"] == 2
    next_sync = datetime.fromisoformat(shown["next_sync_at"])
    # Two failures: 5 minutes doubled once.
    assert timedelta(minutes=9) < next_sync - datetime.now(UTC) <= timedelta(minutes=10)
    assert await enqueue_due_syncs(db=db, settings=settings) == 0

    async with db.session(system=True) as session:
        await session.execute(
            update(CicdProvider)
            .where(CicdProvider.id == provider_id)
            .values(next_sync_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await enqueue_due_syncs(db=db, settings=settings) == 1
    # One waiting sync per provider, however often the schedule comes round.
    assert await enqueue_due_syncs(db=db, settings=settings) == 0

    jenkins_fake.users[jenkins_fake.username] = jenkins_fake.token
    assert (
        await sync_provider(
            db=db, settings=settings, tenant_id=UUID(admin.tenant_id), provider_id=provider_id
        )
    ).ok
    shown = (
        await client.get(f"/api/v1/cicd-providers/{provider['id']}", headers=admin.headers)
    ).json()
    assert shown["sync_failures"] == 0 and shown["next_sync_at"] is None and shown["error"] is None


# Builds left running --------------------------------------------------------------------------


async def test_a_build_whose_following_fails_is_aborted_upstream(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("long", script=lambda params: Script(chunks=["working\n"], hold=True))
    mapping_id = await ci.step(await ci.job(jenkins_body(jenkins_fake)))
    emit = EmitRecorder()

    broken: list[bool] = []

    def break_status_reads() -> None:
        if "working" in emit.text("INFO") and not broken:
            broken.append(True)
            # Jenkins keeps failing the status reads past the retry budget.
            jenkins_fake.fail_next(1000, status=500, body="oops", path_contains="/1/api/json")

    emit.observe = break_status_reads

    assert await ci.run(mapping_id, emit) == "failed"

    assert jenkins_fake.build("long", 1).result == "ABORTED"
    assert len(jenkins_fake.seen("POST", "/1/stop")) == 1
    mapping = await ci.mapping(mapping_id)
    assert "Jenkins answered HTTP 500: oops" in (mapping.error or "")
    assert any("aborted it" in line for line in emit.text("WARNING"))


# CircleCI approvals -----------------------------------------------------------------------------


def _held(parameters: dict[str, Any]) -> PipelineScript:
    return PipelineScript(
        workflows=[
            WorkflowSpec(
                "build-and-deploy",
                [("build", "success"), ("hold", "approval"), ("deploy", "success")],
            )
        ]
    )


async def test_a_circleci_pipeline_on_hold_waits_for_approval_then_goes_on(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG, script=_held)
    mapping_id = await ci.step(await ci.job(circleci_body(circleci_fake)))
    emit = EmitRecorder()
    seen_waiting: list[str] = []

    async def approve_when_waiting() -> None:
        for _ in range(500):
            await asyncio.sleep(0.02)
            if any("waiting for approval" in line for line in emit.text("WARNING")):
                seen_waiting.append((await ci.mapping(mapping_id)).status)
                async with ci.db.session(tenant_id=UUID(ci.admin.tenant_id)) as session:
                    from shipyard.cicd.service import _mapping_read

                    row = await session.get(DeploymentCicdMapping, mapping_id)
                    assert row is not None
                    seen_waiting.append(str(_mapping_read(row, None, None).waiting_for))
                circleci_fake.approve(circleci_fake.projects["gh/acme/api"].pipelines[-1].number)
                return

    approver = asyncio.create_task(approve_when_waiting())
    assert await ci.run(mapping_id, emit) == "success"
    await approver

    assert seen_waiting == ["running", "approval"]
    warnings = emit.text("WARNING")
    assert any(
        "waiting for approval (workflow build-and-deploy is on hold for approval)" in line
        for line in warnings
    )
    assert any("approved; the build goes on" in line for line in emit.text("INFO"))
    assert "-- job deploy #1002: success" in emit.text("INFO")


async def test_a_circleci_approval_never_given_fails_after_the_approval_timeout(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG, script=_held)
    mapping_id = await ci.step(await ci.job(circleci_body(circleci_fake)))
    settings = ci.settings.model_copy(update={"cicd_approval_timeout_seconds": 0.3})

    assert await ci.run(mapping_id, settings=settings) == "failed"

    mapping = await ci.mapping(mapping_id)
    assert mapping.error == (
        "the build waited for approval longer than 0.3 s "
        "(workflow build-and-deploy is on hold for approval); it was cancelled"
    )
    workflow = circleci_fake.projects["gh/acme/api"].pipelines[-1].workflows[0]
    assert workflow.cancelled


# CircleCI GitHub App ------------------------------------------------------------------------------

APP_SLUG = "circleci/5e8f6a2b-1111-4c8e-9a55-3b7f0d0d7b11/7c1d3a8e-8f63-4c8e-9a55-3b7f0d0d7b11"
DEFINITION_ID = "0f6e3f4d-9d1e-4a57-8a2e-2b1f5b0c9a11"


async def test_a_circleci_github_app_project_runs_through_pipeline_run(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project(APP_SLUG, config=CIRCLE_CONFIG, definition_id=DEFINITION_ID)
    body = circleci_body(circleci_fake, slugs=[APP_SLUG])
    missing = await ci.client.post("/api/v1/cicd-providers", headers=ci.admin.headers, json=body)
    assert missing.status_code == 422
    assert error_fields(missing) == ["config"]
    assert "definition_ids" in missing.json()["error"]["message"]

    body["config"]["definition_ids"] = {APP_SLUG: DEFINITION_ID}
    mapping_id = await ci.step(await ci.job(body))

    assert await ci.run(mapping_id) == "success"

    runs = circleci_fake.seen("POST", "/pipeline/run")
    assert len(runs) == 1
    assert runs[0].json()["definition_id"] == DEFINITION_ID
    assert runs[0].json()["config"] == {"branch": "main"}
    assert runs[0].json()["checkout"] == {"branch": "main"}
    assert [r for r in circleci_fake.seen("POST", "/pipeline") if r not in runs] == []
