"""The job catalogue: each provider's jobs and parameters, upserted with stable ids."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.cicd.models import CicdProvider
from shipyard.cicd.sync import enqueue_due_syncs
from shipyard.config import Settings
from shipyard.db import Database
from tests.builders.cicd import CiBuilder
from tests.fakes.circleci import FakeCircleCI
from tests.fakes.github_actions import FakeGitHubActions
from tests.fakes.jenkins import FakeJenkins, Job, Param
from tests.fixtures.cicd import (
    CIRCLE_CONFIG,
    DEPLOY_WORKFLOW,
    circleci_body,
    create_provider,
    github_body,
    jenkins_body,
    sync_jobs,
)
from tests.support.api import Account
from tests.support.runtime import run_worker_until_idle


def _param(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in job["parameters"] if p["name"] == name)


async def test_jenkins_tree_with_nested_folders_and_every_parameter_type(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "team/app/deploy",
        description="Deploys the app",
        params=[
            Param("VERSION", "string", default="1.0", description="Version to deploy"),
            Param("NOTES", "text", default="line one"),
            Param("DRY_RUN", "boolean", default=True),
            Param("REGION", "choice", choices=["eu-west-1", "us-east-1"]),
            Param("DB_PASSWORD", "password", default="do-not-show-me"),
        ],
    )
    jenkins_fake.add_job("team/app/rollback")
    jenkins_fake.add_job("team/lint")
    jenkins_fake.add_job("nightly")
    provider = await ci.provider(jenkins_body(jenkins_fake))

    jobs = await ci.jobs(provider)

    assert [job["path"] for job in jobs] == [
        "nightly",
        "team/app/deploy",
        "team/app/rollback",
        "team/lint",
    ]
    deploy = next(job for job in jobs if job["path"] == "team/app/deploy")
    assert deploy["name"] == "deploy"
    assert deploy["external_id"] == "team/app/deploy"
    assert deploy["parameters"] == [
        {
            "name": "VERSION",
            "type": "string",
            "default": "1.0",
            "choices": None,
            "description": "Version to deploy",
            "required": False,
        },
        {
            "name": "NOTES",
            "type": "string",
            "default": "line one",
            "choices": None,
            "description": None,
            "required": False,
        },
        {
            "name": "DRY_RUN",
            "type": "boolean",
            "default": True,
            "choices": None,
            "description": None,
            "required": False,
        },
        {
            "name": "REGION",
            "type": "choice",
            "default": "eu-west-1",
            "choices": ["eu-west-1", "us-east-1"],
            "description": None,
            "required": False,
        },
        {
            "name": "DB_PASSWORD",
            "type": "password",
            "default": None,
            "choices": None,
            "description": None,
            "required": False,
        },
    ]
    listed = await ci.client.get(
        "/api/v1/cicd-jobs", headers=ci.admin.headers, params={"provider_id": provider["id"]}
    )
    assert "do-not-show-me" not in listed.text
    shown = await ci.client.get(
        f"/api/v1/cicd-providers/{provider['id']}", headers=ci.admin.headers
    )
    assert shown.json()["job_count"] == 4
    assert shown.json()["last_synced_at"] is not None


async def test_resync_keeps_ids_updates_changes_and_removes_jobs_gone_upstream(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("team/deploy", params=[Param("A", "string")])
    jenkins_fake.add_job("team/old")
    provider = await ci.provider(jenkins_body(jenkins_fake))
    before = {job["path"]: job for job in await ci.jobs(provider)}

    jenkins_fake.remove("team/old")
    deploy = jenkins_fake.find("team/deploy")
    assert isinstance(deploy, Job)
    deploy.params = [Param("A", "string"), Param("B", "boolean", default=False)]
    jenkins_fake.add_job("team/new")
    after = {job["path"]: job for job in await ci.jobs(provider)}

    assert set(after) == {"team/deploy", "team/new"}
    assert after["team/deploy"]["id"] == before["team/deploy"]["id"]
    assert [p["name"] for p in after["team/deploy"]["parameters"]] == ["A", "B"]
    gone = await ci.client.get(
        f"/api/v1/cicd-jobs/{before['team/old']['id']}", headers=ci.admin.headers
    )
    assert gone.status_code == 404


async def test_github_workflows_with_dispatch_become_jobs_with_their_inputs(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    deploy = github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    github_fake.add_workflow(
        "acme/api", ".github/workflows/ci.yml", "name: CI\non: [push, pull_request]\n", name="CI"
    )
    github_fake.add_workflow(
        "acme/api", ".github/workflows/manual.yml", "on: workflow_dispatch\n", name="Manual"
    )
    provider = await ci.provider(github_body(github_fake))

    jobs = await ci.jobs(provider)

    assert [job["name"] for job in jobs] == ["Deploy", "Manual"]
    job = jobs[0]
    assert job["external_id"] == str(deploy.id)
    assert job["path"] == ".github/workflows/deploy.yml"
    # Required and without a default: it must be given (GitHub refuses the dispatch otherwise).
    assert _param(job, "environment") == {
        "name": "environment",
        "type": "choice",
        "default": None,
        "choices": ["staging", "production"],
        "description": "Where to deploy",
        "required": True,
    }
    assert _param(job, "dry_run")["type"] == "boolean"
    assert _param(job, "dry_run")["default"] is False
    assert _param(job, "version")["default"] == "latest"
    assert jobs[1]["parameters"] == []


async def test_github_workflow_listing_follows_pagination(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    for index in range(105):
        github_fake.add_workflow(
            "acme/api",
            f".github/workflows/w{index:03}.yml",
            "on: workflow_dispatch\n",
            name=f"w{index:03}",
        )
    provider = await ci.provider(github_body(github_fake))

    jobs = await ci.jobs(provider)

    assert len(jobs) == 105
    pages = [
        r.arg("page")
        for r in github_fake.seen("GET", "/actions/workflows")
        if r.path.endswith("workflows")
    ]
    assert pages == [None, "2"]


async def test_circleci_projects_become_jobs_with_pipeline_parameters(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG)
    circleci_fake.add_project("gh/acme/web", config="version: 2.1\n", seed_pipeline=False)
    provider = await ci.provider(circleci_body(circleci_fake, slugs=["gh/acme/api", "gh/acme/web"]))

    jobs = await ci.jobs(provider)

    assert [job["external_id"] for job in jobs] == ["gh/acme/api", "gh/acme/web"]
    api = jobs[0]
    assert api["name"] == "api"
    assert _param(api, "target") == {
        "name": "target",
        "type": "choice",
        "default": "staging",
        "choices": ["staging", "production"],
        "description": None,
        "required": False,
    }
    assert _param(api, "run_migrations")["type"] == "boolean"
    assert _param(api, "replicas") == {
        "name": "replicas",
        "type": "integer",
        "default": 2,
        "choices": None,
        "description": None,
        "required": False,
    }
    assert _param(api, "release_notes")["description"] == "Shown in the release"
    assert jobs[1]["parameters"] == []


async def test_sync_failure_is_recorded_on_the_provider(
    client: httpx.AsyncClient,
    db: Database,
    cicd_settings: Settings,
    admin: Account,
    jenkins_fake: FakeJenkins,
) -> None:
    from shipyard.cicd.sync import sync_provider

    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    jenkins_fake.revoke()

    result = await sync_provider(
        db=db,
        settings=cicd_settings,
        tenant_id=UUID(admin.tenant_id),
        provider_id=UUID(provider["id"]),
    )

    assert not result.ok
    shown = (
        await client.get(f"/api/v1/cicd-providers/{provider['id']}", headers=admin.headers)
    ).json()
    assert "refused the token (HTTP 401)" in shown["error"]
    assert shown["last_synced_at"] is None


async def test_sync_endpoint_queues_a_job_the_worker_runs(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    admin: Account,
    jenkins_fake: FakeJenkins,
) -> None:
    jenkins_fake.add_job("folder/job-a")
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))

    queued = await client.post(
        f"/api/v1/cicd-providers/{provider['id']}/sync", headers=admin.headers
    )
    again = await client.post(
        f"/api/v1/cicd-providers/{provider['id']}/sync", headers=admin.headers
    )

    assert queued.status_code == 202
    assert queued.json()["status"] == "queued"
    assert again.json() == {"status": "already_queued", "job_id": None}
    await run_worker_until_idle(settings, db, concurrency=1)
    listed = await client.get("/api/v1/cicd-jobs", headers=admin.headers)
    assert [job["path"] for job in listed.json()["items"]] == ["folder/job-a"]


async def test_periodic_sync_queues_only_providers_that_are_due(
    client: httpx.AsyncClient,
    db: Database,
    cicd_settings: Settings,
    admin: Account,
    other_admin: Account,
    jenkins_fake: FakeJenkins,
) -> None:
    jenkins_fake.add_job("job")
    fresh = await create_provider(client, admin, jenkins_body(jenkins_fake, name="fresh"))
    await sync_jobs(db, cicd_settings, admin, fresh["id"])
    await create_provider(client, admin, jenkins_body(jenkins_fake, name="never synced"))
    await create_provider(client, other_admin, jenkins_body(jenkins_fake, name="other tenant"))

    assert await enqueue_due_syncs(db=db, settings=cicd_settings) == 2
    assert await enqueue_due_syncs(db=db, settings=cicd_settings) == 0  # already waiting
    await run_worker_until_idle(cicd_settings, db, concurrency=2)

    async with db.session(system=True) as session:
        synced = {p.name: p.last_synced_at for p in await session.scalars(select(CicdProvider))}
    assert all(synced.values())
    disabled = cicd_settings.model_copy(update={"cicd_sync_interval_minutes": 0})
    assert await enqueue_due_syncs(db=db, settings=disabled) == 0


async def test_sync_retries_provider_errors_then_succeeds(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    provider = await ci.provider(github_body(github_fake))
    github_fake.fail_next(1, status=500, body={"message": "Server Error"})
    github_fake.fail_next(1, status=502, body={"message": "Server Error"})

    jobs = await ci.jobs(provider)

    assert [job["name"] for job in jobs] == ["Deploy"]
    assert len(github_fake.seen("GET", "/actions/workflows")) == 3
