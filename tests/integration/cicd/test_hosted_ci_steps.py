"""GitHub Actions and CircleCI steps through run_step: dispatch/trigger, follow, results, cancel."""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

import pytest

from shipyard.git.models import GitProvider
from tests.builders.cicd import CiBuilder
from tests.fakes.circleci import FakeCircleCI, PipelineScript, WorkflowSpec
from tests.fakes.github_actions import FakeGitHubActions, JobSpec, RunScript
from tests.fixtures.cicd import (
    CIRCLE_CONFIG,
    DEPLOY_WORKFLOW,
    EmitRecorder,
    circleci_body,
    github_body,
)


async def test_github_dispatch_is_followed_to_a_successful_run(
    ci: CiBuilder, github_fake: FakeGitHubActions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    workflow = github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    workflow.visible_after_lists = 2  # GitHub lists a new run only after a moment
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "production", "dry_run": True})
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "success"

    run = github_fake.repos["acme/api"].runs[0]
    assert run.inputs == {"environment": "production", "dry_run": "true", "version": "latest"}
    assert run.ref == "main"  # the repository's default branch
    mapping = await ci.mapping(mapping_id)
    assert mapping.build_number == "1"
    assert mapping.build_url == f"{github_fake.url}/acme/api/actions/runs/{run.id}"
    assert mapping.status == "success"
    console = emit.text("INFO")
    assert "== job deploy started" in console
    assert "-- deploy: step 'Run deploy' success" in console
    assert "input environment=production" in console  # from the job's log, timestamps stripped
    assert console.index("input environment=production") < console.index(
        "== job deploy finished: success"
    )
    listed = github_fake.seen("GET", f"/actions/workflows/{workflow.id}/runs")
    assert listed[0].arg("event") == "workflow_dispatch"
    assert listed[0].arg("branch") == "main"
    assert (listed[0].arg("created") or "").startswith(">=")
    assert github_fake.token not in caplog.text
    assert all(github_fake.token not in line for _, line in emit.lines)


async def test_github_failed_run_fails_the_step(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api",
        ".github/workflows/deploy.yml",
        DEPLOY_WORKFLOW,
        name="Deploy",
        script=lambda inputs: RunScript(
            jobs=[
                JobSpec(
                    "test",
                    [("Checkout", "success"), ("Run tests", "failure"), ("Upload", "success")],
                    log=["3 passed, 1 failed"],
                ),
            ]
        ),
    )
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "staging"})
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "failed"

    mapping = await ci.mapping(mapping_id)
    assert "conclusion: failure" in (mapping.error or "")
    assert "-- test: step 'Run tests' failure" in emit.text("INFO")
    assert "3 passed, 1 failed" in emit.text("INFO")


async def test_github_cancel_cancels_the_run(ci: CiBuilder, github_fake: FakeGitHubActions) -> None:
    github_fake.add_workflow(
        "acme/api",
        ".github/workflows/deploy.yml",
        DEPLOY_WORKFLOW,
        name="Deploy",
        script=lambda inputs: RunScript(
            jobs=[JobSpec("deploy", [("Long step", "success")])], hold=True
        ),
    )
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "staging"})
    emit = EmitRecorder()

    status = await ci.run(
        mapping_id, emit, should_cancel=lambda: "== job deploy started" in emit.text()
    )

    assert status == "cancelled"
    run = github_fake.repos["acme/api"].runs[0]
    assert run.conclusion == "cancelled"
    assert github_fake.seen("POST", f"/actions/runs/{run.id}/cancel")


async def test_github_steps_of_the_same_workflow_each_follow_their_own_run(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    job_id = await ci.job(github_body(github_fake))
    first = await ci.step(job_id, {"environment": "staging"})
    second = await ci.step(job_id, {"environment": "production"})

    results = await asyncio.gather(
        ci.run(first),
        ci.run(second),
    )

    assert list(results) == ["success", "success"]
    followed = {
        (await ci.mapping(first)).tracking["run_id"],
        (await ci.mapping(second)).tracking["run_id"],
    }
    assert followed == {run.id for run in github_fake.repos["acme/api"].runs}


async def test_github_token_of_a_linked_git_provider_is_used_and_its_loss_fails_the_step(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    # A GitHub Enterprise git provider: its token may only go to its own API, {server}/api/v3.
    github_fake.base_path = "/api/v3"
    async with ci.db.session(tenant_id=UUID(ci.admin.tenant_id)) as session:
        git = GitProvider(
            tenant_id=UUID(ci.admin.tenant_id),
            type="github",
            name="GitHub",
            server_url=github_fake.url,
            access_token=github_fake.token,
        )
        session.add(git)
        await session.flush()
        git_id = git.id
    body = github_body(github_fake)
    body["url"] = f"{github_fake.url}/api/v3"
    body["config"] = {"repository": "acme/api", "git_provider_id": str(git_id)}
    provider = await ci.provider(body)
    assert provider["config"] == {
        "repository": "acme/api",
        "git_provider_id": str(git_id),
        "has_token": False,
    }
    jobs = await ci.jobs(provider)
    mapping_id = await ci.step(jobs[0]["id"], {"environment": "staging"})
    assert await ci.run(mapping_id) == "success"

    async with ci.db.session(tenant_id=UUID(ci.admin.tenant_id)) as session:
        await session.delete(await session.get(GitProvider, git_id))
    again = await ci.step(jobs[0]["id"], {"environment": "staging"})
    assert await ci.run(again) == "failed"
    assert "linked to 'GitHub Actions' was deleted" in await ci.error(again)


async def test_github_revoked_token_fails_the_step_with_githubs_message(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "staging"})
    github_fake.revoke()

    assert await ci.run(mapping_id) == "failed"

    error = await ci.error(mapping_id)
    assert "GitHub Actions refused the token (HTTP 401): Bad credentials" in error


async def test_github_rate_limit_is_waited_out(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "staging"})
    github_fake.fail_next(
        1,
        status=403,
        body={"message": "API rate limit exceeded for user ID 1.", "documentation_url": "x"},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"},
        path_contains="/dispatches",
    )

    assert await ci.run(mapping_id) == "success"
    assert len(github_fake.seen("POST", "/dispatches")) == 2
    assert len(github_fake.repos["acme/api"].runs) == 1


async def test_circleci_pipeline_runs_to_success_with_workflow_progress(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG, queue_ticks=2)
    job_id = await ci.job(circleci_body(circleci_fake))
    mapping_id = await ci.step(job_id, {"target": "production", "replicas": "3"})
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "success"

    pipeline = circleci_fake.projects["gh/acme/api"].pipelines[-1]
    assert pipeline.parameters == {
        "target": "production",
        "replicas": 3,
        "run_migrations": True,
        "release_notes": "",
    }
    assert pipeline.branch == "main"
    mapping = await ci.mapping(mapping_id)
    assert mapping.build_number == str(pipeline.number)
    assert mapping.build_url == f"{circleci_fake.url}/pipelines/gh/acme/api/{pipeline.number}"
    console = emit.text("INFO")
    assert "== workflow build-and-deploy: running" in console
    assert "-- job build #1000: success" in console
    assert "-- job deploy #1001: success" in console
    assert "== workflow build-and-deploy: success" in console


async def test_circleci_failed_workflow_fails_the_step(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project(
        "gh/acme/api",
        config=CIRCLE_CONFIG,
        script=lambda params: PipelineScript(
            workflows=[
                WorkflowSpec("build-and-deploy", [("build", "failed"), ("deploy", "success")])
            ]
        ),
    )
    job_id = await ci.job(circleci_body(circleci_fake))
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "failed"

    assert "build-and-deploy: failed" in (await ci.error(mapping_id))
    assert "-- job deploy: not_run" in emit.text("INFO")


async def test_circleci_errored_pipeline_fails_with_circlecis_errors(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG)
    job_id = await ci.job(circleci_body(circleci_fake))
    mapping_id = await ci.step(job_id)
    # The config changed upstream since the last sync: it no longer accepts `replicas`.
    circleci_fake.projects[
        "gh/acme/api"
    ].config = "version: 2.1\nparameters:\n  target:\n    type: string\n    default: x\n"

    assert await ci.run(mapping_id) == "failed"

    error = await ci.error(mapping_id)
    assert "the pipeline errored: Unexpected argument(s):" in error


async def test_circleci_cancel_cancels_running_workflows(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project(
        "gh/acme/api",
        config=CIRCLE_CONFIG,
        script=lambda params: PipelineScript(
            workflows=[WorkflowSpec("deploy", [("deploy", "success")])], hold=True
        ),
    )
    job_id = await ci.job(circleci_body(circleci_fake))
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    status = await ci.run(
        mapping_id, emit, should_cancel=lambda: "== workflow deploy: running" in emit.text()
    )

    assert status == "cancelled"
    pipeline = circleci_fake.projects["gh/acme/api"].pipelines[-1]
    assert pipeline.workflows[0].cancelled
    assert circleci_fake.seen("POST", f"/workflow/{pipeline.workflows[0].id}/cancel")


async def test_circleci_stuck_pipeline_times_out(
    ci: CiBuilder, circleci_fake: FakeCircleCI
) -> None:
    circleci_fake.add_project("gh/acme/api", config=CIRCLE_CONFIG, queue_ticks=10**9)
    job_id = await ci.job(circleci_body(circleci_fake))
    mapping_id = await ci.step(job_id)
    settings = ci.settings.model_copy(update={"cicd_queue_timeout_seconds": 0.3})

    assert await ci.run(mapping_id, settings=settings) == "failed"

    mapping = await ci.mapping(mapping_id)
    assert "did not leave the CircleCI queue within 0.3 s (pipeline is created)" in (
        mapping.error or ""
    )
    assert mapping.build_number is not None  # CircleCI numbers a pipeline when it is created


async def test_github_refusing_the_dispatch_fails_the_step_with_githubs_message(
    ci: CiBuilder, github_fake: FakeGitHubActions
) -> None:
    workflow = github_fake.add_workflow(
        "acme/api", ".github/workflows/deploy.yml", DEPLOY_WORKFLOW, name="Deploy"
    )
    job_id = await ci.job(github_body(github_fake))
    mapping_id = await ci.step(job_id, {"environment": "staging"})
    # The workflow dropped its `version` input after the last sync.
    workflow.content = DEPLOY_WORKFLOW.replace(
        "      version:\n        type: string\n        default: latest\n", ""
    )

    assert await ci.run(mapping_id) == "failed"

    error = await ci.error(mapping_id)
    assert error == "GitHub Actions answered HTTP 422: Unexpected inputs provided: ['version']"
    assert github_fake.repos["acme/api"].runs == []
