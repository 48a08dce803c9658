"""Jenkins steps through run_step: trigger, queue, build, console, results, failures, resume."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest

from tests.builders.cicd import CiBuilder
from tests.fakes.jenkins import FakeJenkins, Job, Param, Script
from tests.fixtures.cicd import EmitRecorder, jenkins_body

DEPLOY = "team/app/deploy"


async def test_parameterised_build_runs_to_success_with_its_console_in_order(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        DEPLOY,
        params=[
            Param("ENV", "choice", choices=["staging", "production"]),
            Param("DRY_RUN", "boolean", default=False),
            Param("TAG", "string", default="latest"),
        ],
        queue_polls=2,
    )
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id, {"ENV": "production", "DRY_RUN": True})
    emit = EmitRecorder()
    # Each console line is recorded with whether Jenkins still reported the build running.
    job = jenkins_fake.find(DEPLOY)
    assert isinstance(job, Job)
    emit.observe = lambda: bool(job.builds) and job.builds[0].building

    status = await ci.run(mapping_id, emit)

    assert status == "success"
    build = jenkins_fake.build(DEPLOY, 1)
    assert build.params == {"ENV": "production", "DRY_RUN": "true", "TAG": "latest"}
    console = emit.text("INFO")
    expected = [
        "Started by user admin",
        "Parameter DRY_RUN=true",
        "Parameter ENV=production",
        "Parameter TAG=latest",
        "Building...",
        "Finished: SUCCESS",
    ]
    assert [line for line in console if line in expected] == expected
    # Streamed while the build ran, not dumped at the end.
    states = dict(zip([line for _, line in emit.lines], emit.observed, strict=True))
    assert states["Started by user admin"] is True
    assert states["Finished: SUCCESS"] is False
    mapping = await ci.mapping(mapping_id)
    assert mapping.status == "success"
    assert mapping.build_number == "1"
    assert mapping.build_url == f"{jenkins_fake.url}/job/team/job/app/job/deploy/1/"
    assert mapping.started_at is not None and mapping.completed_at is not None
    assert mapping.started_at <= mapping.completed_at
    assert mapping.error is None
    # The queue item was followed to its build through the Location header.
    assert jenkins_fake.seen("GET", "/queue/item/100/api/json")
    assert jenkins_fake.seen("POST", "/job/team/job/app/job/deploy/buildWithParameters")


async def test_failed_build_fails_the_step_with_the_result(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "smoke",
        script=lambda params: Script(
            chunks=["running tests\n", "test_login FAILED\n", "Finished: FAILURE\n"],
            result="FAILURE",
        ),
    )
    job_id = await ci.job(jenkins_body(jenkins_fake), path="smoke")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    status = await ci.run(mapping_id, emit)

    assert status == "failed"
    assert "test_login FAILED" in emit.text("INFO")
    assert any("FAILURE" in line for line in emit.text("ERROR"))
    mapping = await ci.mapping(mapping_id)
    assert mapping.status == "failed"
    assert mapping.build_number == "1"
    assert "FAILURE" in (mapping.error or "")
    # A job without parameters is triggered with /build.
    assert jenkins_fake.seen("POST", "/job/smoke/build")


async def test_console_is_read_progressively_from_the_text_size_offset(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    # A line split across two reads is emitted once, whole.
    jenkins_fake.add_job(
        "chatty",
        script=lambda params: Script(chunks=["one\ntw", "o\nthree\n", "four"]),
    )
    job_id = await ci.job(jenkins_body(jenkins_fake), path="chatty")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "success"

    console = [
        line for line in emit.text("INFO") if line in {"one", "two", "three", "four", "tw", "o"}
    ]
    assert console == ["one", "two", "three", "four"]
    starts = [int(r.arg("start") or 0) for r in jenkins_fake.seen("GET", "progressiveText")]
    assert starts[0] == 0
    assert starts == sorted(starts) and len(set(starts)) >= 3


async def test_password_parameter_is_stored_encrypted_and_masked_in_the_console(
    ci: CiBuilder, jenkins_fake: FakeJenkins, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jenkins_fake.add_job(
        DEPLOY,
        params=[Param("DB_PASSWORD", "password", default="default-secret"), Param("ENV", "string")],
    )
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id, {"DB_PASSWORD": "s3cr3t-value-42", "ENV": "prod"})
    mapping = await ci.mapping(mapping_id)
    assert "s3cr3t-value-42" not in str(mapping.parameters)
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "success"

    assert jenkins_fake.build(DEPLOY, 1).params["DB_PASSWORD"] == "s3cr3t-value-42"
    every_line = "\n".join(line for _, line in emit.lines)
    assert "Parameter DB_PASSWORD=***" in every_line
    assert "s3cr3t-value-42" not in every_line
    assert jenkins_fake.token not in every_line
    assert "s3cr3t-value-42" not in caplog.text
    assert jenkins_fake.token not in caplog.text


async def test_build_stuck_in_the_queue_times_out_with_the_reason_and_is_cancelled(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("stuck", queue_polls=None)
    job_id = await ci.job(jenkins_body(jenkins_fake), path="stuck")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()
    settings = ci.settings.model_copy(update={"cicd_queue_timeout_seconds": 0.5})

    status = await ci.run(mapping_id, emit, settings=settings)

    assert status == "failed"
    mapping = await ci.mapping(mapping_id)
    assert mapping.build_number is None
    assert "did not leave the Jenkins queue within 0.5 s" in (mapping.error or "")
    assert "Waiting for next available executor" in (mapping.error or "")
    assert jenkins_fake.queue[100].cancelled
    assert any("queue" in line for line in emit.text("ERROR"))


async def test_credentials_revoked_mid_run_fail_the_step_with_jenkins_reason(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("long", script=lambda params: Script(chunks=["working\n"], hold=True))
    job_id = await ci.job(jenkins_body(jenkins_fake), path="long")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    def revoke_once_running() -> bool:
        if "working" in emit.text("INFO"):
            jenkins_fake.revoke()
        return False

    status = await ci.run(mapping_id, emit, should_cancel=revoke_once_running)

    assert status == "failed"
    mapping = await ci.mapping(mapping_id)
    assert "refused the token (HTTP 401)" in (mapping.error or "")
    assert "Invalid password/token for user: admin" in (mapping.error or "")
    assert mapping.build_number == "1"


async def test_provider_deleted_mid_run_fails_the_step(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("long", script=lambda params: Script(chunks=["working\n"], hold=True))
    provider = await ci.provider(jenkins_body(jenkins_fake))
    mapping_id = await ci.step((await ci.jobs(provider))[0]["id"])
    emit = EmitRecorder()
    deleted: list[int] = []

    async def delete_when_running() -> None:
        for _ in range(500):
            if "working" in emit.text("INFO"):
                response = await ci.client.delete(
                    f"/api/v1/cicd-providers/{provider['id']}", headers=ci.admin.headers
                )
                deleted.append(response.status_code)
                return
            await asyncio.sleep(0.01)

    deleter = asyncio.create_task(delete_when_running())
    status = await ci.run(mapping_id, emit)
    await deleter

    assert deleted == [204]
    assert status == "failed"
    mapping = await ci.mapping(mapping_id)
    assert mapping.error == "the CI/CD provider was deleted while the step was running"
    assert mapping.cicd_job_id is None  # the job went with its provider; the record stays


async def test_jenkins_5xx_and_429_are_retried_until_it_recovers(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(DEPLOY)
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id)
    jenkins_fake.fail_next(2, status=502, body="Bad Gateway", path_contains="/build")
    jenkins_fake.fail_next(1, status=429, headers={"Retry-After": "0"}, path_contains="/api/json")
    jenkins_fake.fail_next(2, status=503, path_contains="progressiveText")
    emit = EmitRecorder()

    assert await ci.run(mapping_id, emit) == "success"

    assert len(jenkins_fake.seen("POST", "/build")) == 3
    assert len(jenkins_fake.queue) == 1  # retried only what Jenkins did not act on
    assert "Finished: SUCCESS" in emit.text("INFO")


async def test_a_provider_down_for_longer_than_the_retry_budget_fails_the_step(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(DEPLOY)
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id)
    jenkins_fake.fail_next(1000, status=503, body="Jenkins is restarting")
    settings = ci.settings.model_copy(update={"cicd_retry_seconds": 0.6})

    status = await ci.run(mapping_id, settings=settings)

    assert status == "failed"
    mapping = await ci.mapping(mapping_id)
    assert "HTTP 503" in (mapping.error or "")
    assert "Jenkins is restarting" in (mapping.error or "")
    assert "gave up after" in (mapping.error or "")


async def test_cancel_aborts_the_running_build(ci: CiBuilder, jenkins_fake: FakeJenkins) -> None:
    jenkins_fake.add_job("long", script=lambda params: Script(chunks=["working\n"], hold=True))
    job_id = await ci.job(jenkins_body(jenkins_fake), path="long")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    status = await ci.run(mapping_id, emit, should_cancel=lambda: "working" in emit.text("INFO"))

    assert status == "cancelled"
    assert jenkins_fake.seen("POST", "/job/long/1/stop")
    assert jenkins_fake.build("long", 1).result == "ABORTED"
    mapping = await ci.mapping(mapping_id)
    assert mapping.status == "cancelled"
    assert mapping.completed_at is not None


async def test_cancel_while_queued_removes_the_queue_item(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("stuck", queue_polls=None)
    job_id = await ci.job(jenkins_body(jenkins_fake), path="stuck")
    mapping_id = await ci.step(job_id)
    emit = EmitRecorder()

    status = await ci.run(
        mapping_id, emit, should_cancel=lambda: any("queued" in line for line in emit.text())
    )

    assert status == "cancelled"
    assert jenkins_fake.queue[100].cancelled
    assert cast(Job, jenkins_fake.find("stuck")).builds == []


async def test_crumb_is_fetched_when_jenkins_asks_for_one(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.require_crumb = True
    jenkins_fake.add_job(DEPLOY)
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id)

    assert await ci.run(mapping_id) == "success"

    assert len(jenkins_fake.seen("GET", "/crumbIssuer/api/json")) == 1
    posts = jenkins_fake.seen("POST", "/build")
    assert [p.header("jenkins-crumb") is not None for p in posts] == [False, True]


async def test_restarted_worker_follows_the_existing_build_instead_of_triggering_again(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "steps",
        script=lambda params: Script(chunks=["step 1\n", "step 2\n", "step 3\n", "step 4\n"]),
    )
    job_id = await ci.job(jenkins_body(jenkins_fake), path="steps")
    mapping_id = await ci.step(job_id)
    first = EmitRecorder()

    class WorkerLost(Exception):
        """Stands for the worker process dying."""

    async def crash_after_step_2(level: str, line: str) -> None:
        await first(level, line)
        if line == "step 2":
            raise WorkerLost

    with pytest.raises(WorkerLost):
        await ci.run(mapping_id, crash_after_step_2)
    interrupted = await ci.mapping(mapping_id)
    assert interrupted.status == "running" and interrupted.build_number == "1"

    second = EmitRecorder()
    assert await ci.run(mapping_id, second) == "success"

    assert len(jenkins_fake.seen("POST", "/build")) == 1
    assert [b.number for b in cast(Job, jenkins_fake.find("steps")).builds] == [1]
    assert any("resuming" in line for line in second.text("WARNING"))
    # Lines already seen before the crash are not read again.
    assert "step 1" not in second.text("INFO")
    assert second.text("INFO")[-1].endswith("succeeded") or "step 4" in second.text("INFO")
    # Running a finished step again is a no-op that returns its status.
    third = EmitRecorder()
    assert await ci.run(mapping_id, third) == "success"
    assert third.lines == []


async def test_a_provider_timeout_is_retried(ci: CiBuilder, jenkins_fake: FakeJenkins) -> None:
    jenkins_fake.add_job(DEPLOY)
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id)
    # The first status read hangs longer than the HTTP timeout.
    jenkins_fake.fail_next(1, status=200, body="{}", delay=1.0, path_contains="/1/api/json")
    settings = ci.settings.model_copy(update={"http_timeout": 0.3})

    assert await ci.run(mapping_id, settings=settings) == "success"
    assert len(jenkins_fake.seen("GET", "/1/api/json")) >= 2


async def test_a_build_running_past_the_build_timeout_is_aborted(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job("long", script=lambda params: Script(chunks=["working\n"], hold=True))
    job_id = await ci.job(jenkins_body(jenkins_fake), path="long")
    mapping_id = await ci.step(job_id)
    settings = ci.settings.model_copy(update={"cicd_build_timeout_seconds": 0.5})

    assert await ci.run(mapping_id, settings=settings) == "failed"

    mapping = await ci.mapping(mapping_id)
    assert mapping.error == "the build ran longer than 0.5 s; it was aborted"
    assert jenkins_fake.build("long", 1).result == "ABORTED"


async def test_jenkins_refusing_the_trigger_fails_the_step_with_its_reason(
    ci: CiBuilder, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(DEPLOY, params=[Param("ENV", "choice", choices=["a", "b"])])
    job_id = await ci.job(jenkins_body(jenkins_fake), path=DEPLOY)
    mapping_id = await ci.step(job_id, {"ENV": "b"})
    # The job's choices changed in Jenkins after the last sync.
    job = jenkins_fake.find(DEPLOY)
    assert isinstance(job, Job)
    job.params = [Param("ENV", "choice", choices=["a", "c"])]

    assert await ci.run(mapping_id) == "failed"

    mapping = await ci.mapping(mapping_id)
    assert mapping.error == (
        "Jenkins answered HTTP 400: HTTP ERROR 400 Illegal choice for parameter ENV: b"
    )
    assert mapping.started_at is None and mapping.completed_at is not None
