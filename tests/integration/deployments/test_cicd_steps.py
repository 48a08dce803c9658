"""Deployments with CI/CD steps: a Jenkins job triggered and followed before the host scripts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from shipyard.config import Settings
from shipyard.db import Database
from tests.fakes.jenkins import FakeJenkins, Param, Script
from tests.fixtures.cicd import create_provider, jenkins_body, sync_jobs
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WaitForStatus, WorkerControl
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account
from tests.support.deployments_api import all_logs, create

FAST: dict[str, Any] = {
    "cicd_poll_interval_seconds": 0.02,
    "cicd_queue_timeout_seconds": 5.0,
    "cicd_retry_seconds": 1.0,
}


def failing(params: dict[str, str]) -> Script:
    return Script(
        chunks=[
            "Started\n",
            f"Deploying {params.get('version')}\n",
            "Tests failed\n",
            "Finished: FAILURE\n",
        ],
        result="FAILURE",
    )


async def jenkins_job(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    jenkins_fake: FakeJenkins,
    *,
    fail: bool = False,
) -> dict[str, Any]:
    jenkins_fake.add_job(
        "team/app/deploy",
        params=[
            Param("version", "string", "latest"),
            Param("dry_run", "boolean", False),
            Param("target", "choice", "staging", choices=["staging", "production"]),
        ],
        script=failing if fail else None,
    )
    provider = await create_provider(client, admin, jenkins_body(jenkins_fake))
    jobs = await sync_jobs(db, settings, admin, provider["id"])
    return next(job for job in jobs if job["path"] == "team/app/deploy")


async def test_ci_step_then_host_scripts_succeeds_with_build_link_and_console(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    jenkins_fake: FakeJenkins,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    job = await jenkins_job(client, admin, db, settings, jenkins_fake)
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start(**FAST)
    deployment = await create(
        client,
        admin,
        {
            "name": "build then ship",
            "repository_id": repo.id,
            "host_ids": [hosts[0]["id"]],
            "scripts": [{"script_id": repo.scripts["check.sh"]}],
            "cicd_steps": [
                {
                    "cicd_job_id": job["id"],
                    "parameters": {"version": "1.2.3", "target": "production"},
                }
            ],
        },
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "success", done
    mappings = (
        await client.get(
            f"/api/v1/deployments/{deployment['id']}/cicd-mappings", headers=admin.headers
        )
    ).json()
    mapping = mappings[0] if isinstance(mappings, list) else mappings["items"][0]
    assert mapping["status"] == "success"
    assert mapping["build_number"] == "1"
    assert mapping["build_url"].startswith(jenkins_fake.url) and "/team/" in mapping["build_url"]
    assert mapping["parameters"]["version"] == "1.2.3"
    messages = [line["message"] for line in await all_logs(client, admin, deployment["id"])]
    assert "Parameter version=1.2.3" in messages and "Parameter target=production" in messages
    # The CI step ran before the host script.
    assert messages.index("Parameter version=1.2.3") < messages.index("check ok")


async def test_failed_build_fails_the_deployment_and_scripts_never_run(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    jenkins_fake: FakeJenkins,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    job = await jenkins_job(client, admin, db, settings, jenkins_fake, fail=True)
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start(**FAST)
    deployment = await create(
        client,
        admin,
        {
            "name": "gated",
            "repository_id": repo.id,
            "host_ids": [hosts[0]["id"]],
            "scripts": [{"script_id": repo.scripts["check.sh"]}],
            "cicd_steps": [{"cicd_job_id": job["id"], "parameters": {"version": "9"}}],
        },
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "failed"
    messages = [line["message"] for line in await all_logs(client, admin, deployment["id"])]
    assert "Tests failed" in messages
    assert "check ok" not in messages
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    assert all(row["status"] in {"skipped", "pending"} for row in scripts)


async def test_ci_only_deployment_after_stage_and_parameter_validation(
    client: httpx.AsyncClient,
    admin: Account,
    db: Database,
    settings: Settings,
    jenkins_fake: FakeJenkins,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    job = await jenkins_job(client, admin, db, settings, jenkins_fake)
    bad = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "x",
            "cicd_steps": [{"cicd_job_id": job["id"], "parameters": {"nope": "1"}}],
        },
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["errors"][0]["field"].startswith(
        "cicd_steps.0.parameters"
    )
    outside = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "x",
            "cicd_steps": [{"cicd_job_id": job["id"], "parameters": {"target": "moon"}}],
        },
    )
    assert outside.status_code == 422
    unknown = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={
            "name": "x",
            "cicd_steps": [{"cicd_job_id": str(uuid.uuid4()), "parameters": {}}],
        },
    )
    assert unknown.status_code in (404, 422)
    worker.start(**FAST)
    deployment = await create(
        client,
        admin,
        {
            "name": "ci only",
            "cicd_steps": [
                {"cicd_job_id": job["id"], "parameters": {"dry_run": True}, "stage": "after"}
            ],
        },
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "success"
    assert done["host_ids"] == []
