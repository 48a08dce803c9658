"""Deployments end to end: real git over HTTP, real sshd hosts, PostgreSQL and a worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from shipyard.db import Database, to_libpq_url
from shipyard.git.models import Repository
from shipyard.hosts.models import Host
from tests.builders.deployments import DeployBuilder
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account, add_member

SECRET = "s3cr3t-" + uuid.uuid4().hex


def remote_processes(marker: str) -> list[str]:
    result = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def bad_name() -> str:
    """A host name check.sh fails on."""
    return f"bad-{uuid.uuid4().hex[:6]}"


async def test_success_on_several_hosts_with_args_env_and_secret(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo(SCRIPTS)
    assert "tools/never.txt" not in repo.scripts and "chatty.py" in repo.scripts
    hosts = await deploy.hosts(3)
    deployment = await deploy.start(
        repo,
        hosts,
        ("deploy.sh", ["alpha", "two words"]),
        ("check.sh", []),
        environment=[
            {"name": "REGION", "value": "eu-west"},
            {"name": "API_TOKEN", "value": SECRET, "secret": True},
        ],
    )
    assert deployment["secret_environment_names"] == ["API_TOKEN"]
    assert SECRET not in str(deployment)
    done = await deploy.wait(deployment["id"])
    assert done["status"] == "success", done
    assert done["commit_sha"] == repo.hosted.head()
    assert done["started_at"] and done["completed_at"]
    scripts = await deploy.scripts(deployment["id"])
    assert len(scripts) == 6
    assert {(s["status"], s["exit_code"]) for s in scripts} == {("success", 0)}
    assert {s["host_id"] for s in scripts} == {h["id"] for h in hosts}
    logs = await deploy.logs(deployment["id"])
    messages = [line["message"] for line in logs]
    for host in hosts:
        assert f"hello from {host['name']} args=alpha two words" in messages
    assert "region=eu-west" in messages
    assert "token=***" in messages
    assert any(
        line["level"] == "INFO" and line["stream"] == "stderr" and line["message"] == "to stderr"
        for line in logs
    )
    assert [line["seq"] for line in logs] == sorted(line["seq"] for line in logs)
    # The secret is nowhere: not in logs, script outputs or the raw tables.
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        dumped = conn.execute(
            "SELECT string_agg(message, '\n') FROM deployment_logs UNION ALL "
            "SELECT string_agg(output, '\n') FROM deployment_scripts"
        ).fetchall()
    assert SECRET not in str(dumped)
    assert all("token=***" in (s["output"] or "") for s in scripts if s["name"] == "deploy.sh")


async def test_one_failing_host_makes_it_partial_and_stops_that_hosts_sequence(
    deploy: DeployBuilder,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    good = await deploy.hosts(2)
    bad = await deploy.hosts(1, name=bad_name())
    done = await deploy.run(repo, good + bad, ("check.sh", []), ("deploy.sh", []))
    assert done["status"] == "partial"
    on_bad = [s for s in await deploy.scripts(done["id"]) if s["host_id"] == bad[0]["id"]]
    assert [(s["status"], s["exit_code"]) for s in on_bad] == [("failed", 3), ("skipped", None)]
    assert "exited with code 3" in on_bad[0]["error"]
    assert "check failed on bad-" in on_bad[0]["output"]
    errors = await deploy.messages(done["id"], host_id=bad[0]["id"], level="ERROR")
    assert any("exited with code 3" in message for message in errors)


async def test_unreachable_host_fails_with_a_clear_message(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    closed = await deploy.client.post(
        "/api/v1/hosts",
        headers=deploy.admin.headers,
        json={"name": "gone", "ip": "127.0.0.1", "port": 1, "user": "x", "password": "whatever-pw"},
    )
    assert closed.status_code == 201, closed.text
    done = await deploy.run(repo, [*hosts, closed.json()], ("check.sh", []))
    assert done["status"] == "partial"
    logs = await deploy.messages(done["id"], host_id=closed.json()["id"])
    # One message for refused and timed out (the outbound policy's rule: no port oracle).
    assert any("connection failed or timed out" in message.lower() for message in logs), logs


async def test_stop_on_first_failure_skips_the_remaining_hosts(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    bad = await deploy.hosts(1, name=bad_name())
    good = await deploy.hosts(3)
    done = await deploy.run(
        repo, bad + good, ("check.sh", []), options={"parallelism": 1, "stop_on_failure": True}
    )
    assert done["status"] == "failed"
    statuses = await deploy.statuses_by_host(done["id"])
    assert statuses[bad[0]["id"]] == "failed"
    assert [statuses[h["id"]] for h in good] == ["skipped"] * 3


async def test_rolling_batches_abort_past_the_failure_threshold(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    first = await deploy.hosts(1)
    bad = await deploy.hosts(1, name=bad_name())
    rest = await deploy.hosts(2)
    done = await deploy.run(
        repo,
        first + bad + rest,
        ("check.sh", []),
        options={"batch_size": 2, "max_failure_percent": 25},
    )
    assert done["status"] == "partial"
    statuses = await deploy.statuses_by_host(done["id"])
    assert statuses[first[0]["id"]] == "success" and statuses[bad[0]["id"]] == "failed"
    assert [statuses[h["id"]] for h in rest] == ["skipped", "skipped"]
    logs = await deploy.messages(done["id"])
    assert any("Batch 1 of 2" in m for m in logs)
    assert any("threshold" in m for m in logs)
    assert not any("Batch 2 of 2" in m for m in logs)


async def test_timeout_fails_the_script_and_stops_the_remote_process(
    deploy: DeployBuilder,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    marker = f"timeout-{uuid.uuid4().hex[:8]}"
    done = await deploy.run(
        repo,
        hosts,
        ("slow.sh", [marker, "60"]),
        ("check.sh", []),
        options={"script_timeout_seconds": 2},
        timeout=30,
    )
    assert done["status"] == "failed"
    scripts = await deploy.scripts(done["id"])
    assert scripts[0]["status"] == "failed" and "timed out after 2 s" in scripts[0]["error"]
    assert scripts[1]["status"] == "skipped"
    await asyncio.sleep(0.5)
    assert remote_processes(marker) == []


async def test_cancel_a_running_deployment_kills_remote_processes(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(2)
    marker = f"cancel-{uuid.uuid4().hex[:8]}"
    deployment = await deploy.start(repo, hosts, ("slow.sh", [marker, "60"]), ("check.sh", []))
    for _ in range(200):
        if len(remote_processes(marker)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert remote_processes(marker), "the script never started"
    cancelled = await deploy.cancel(deployment["id"])
    assert cancelled.status_code == 200
    assert cancelled.json()["cancel_requested_at"]
    done = await deploy.wait(deployment["id"], timeout=20)
    assert done["status"] == "cancelled"
    await asyncio.sleep(0.5)
    assert remote_processes(marker) == []
    scripts = await deploy.scripts(deployment["id"])
    assert {s["status"] for s in scripts} <= {"cancelled", "skipped"}
    assert (await deploy.cancel(deployment["id"])).status_code == 409


async def test_cancel_while_pending_or_scheduled_never_runs(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    counter = f"/tmp/sy-count-{uuid.uuid4().hex}"
    pending = await deploy.create(deploy.body(repo, hosts, ("count.sh", [counter])))
    assert pending["status"] == "pending"
    scheduled = await deploy.create(
        deploy.body(
            repo, hosts, ("count.sh", [counter]), schedule="later", scheduled_time=in_seconds(3)
        )
    )
    assert scheduled["status"] == "scheduled"
    for item in (pending, scheduled):
        response = await deploy.cancel(item["id"])
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
    deploy.worker.start()
    await asyncio.sleep(4.5)
    for item in (pending, scheduled):
        again = (await deploy.get(item["id"])).json()
        assert again["status"] == "cancelled" and again["started_at"] is None
    assert not os.path.exists(counter)


async def test_scheduled_deployment_starts_on_time_and_can_be_rescheduled(
    deploy: DeployBuilder,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    deployment = await deploy.create(
        deploy.body(repo, hosts, ("check.sh", []), schedule="later", scheduled_time=in_seconds(30))
    )
    moved_to = in_seconds(2.5)
    moved = await deploy.client.patch(
        f"/api/v1/deployments/{deployment['id']}",
        headers=deploy.admin.headers,
        json={"scheduled_time": moved_to},
    )
    assert moved.status_code == 200, moved.text
    deploy.worker.start()
    done = await deploy.wait(deployment["id"], timeout=30)
    assert done["status"] == "success"
    started = datetime.fromisoformat(done["started_at"])
    planned = datetime.fromisoformat(done["scheduled_time"])
    assert 0 <= (started - planned).total_seconds() < 1.0, (started, planned)
    late = await deploy.client.patch(
        f"/api/v1/deployments/{deployment['id']}",
        headers=deploy.admin.headers,
        json={"scheduled_time": moved_to},
    )
    assert late.status_code == 409


async def test_scheduled_deployment_survives_a_worker_restart(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    first = deploy.worker.start()
    deployment = await deploy.create(
        deploy.body(repo, hosts, ("check.sh", []), schedule="later", scheduled_time=in_seconds(2))
    )
    await asyncio.sleep(0.5)
    await deploy.worker.stop(first)  # every worker gone before the time comes
    await asyncio.sleep(2.5)
    still = (await deploy.get(deployment["id"])).json()
    assert still["status"] == "scheduled"
    deploy.worker.start()
    done = await deploy.wait(deployment["id"], timeout=30)
    assert done["status"] == "success"


async def test_rerun_runs_the_same_inputs_again(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    first = await deploy.run(
        repo,
        hosts,
        ("deploy.sh", ["again"]),
        environment=[{"name": "API_TOKEN", "value": SECRET, "secret": True}],
    )
    rerun = await deploy.client.post(
        f"/api/v1/deployments/{first['id']}/rerun", headers=deploy.admin.headers
    )
    assert rerun.status_code == 201, rerun.text
    second = rerun.json()
    assert second["rerun_of"] == first["id"] and second["id"] != first["id"]
    assert second["secret_environment_names"] == ["API_TOKEN"]
    done = await deploy.wait(second["id"])
    assert done["status"] == "success"
    messages = await deploy.messages(second["id"])
    assert any("args=again" in m for m in messages) and "token=***" in messages


async def test_delete_only_when_not_running(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    marker = f"delete-{uuid.uuid4().hex[:8]}"
    deployment = await deploy.start(repo, hosts, ("slow.sh", [marker, "30"]))
    await deploy.wait(deployment["id"], {"in_progress"})
    url = f"/api/v1/deployments/{deployment['id']}"
    refused = await deploy.client.delete(url, headers=deploy.admin.headers)
    assert refused.status_code == 409
    await deploy.cancel(deployment["id"])
    await deploy.wait(deployment["id"])
    assert (await deploy.client.delete(url, headers=deploy.admin.headers)).status_code == 204
    assert (await deploy.get(deployment["id"])).status_code == 404


async def test_create_validation_names_the_field(
    deploy: DeployBuilder, other_admin: Account
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    foreign = await deploy.hosts(1, account=other_admin)
    good = deploy.body(repo, hosts, ("check.sh", []))
    cases = [
        ({**good, "host_ids": [str(uuid.uuid4())]}, "host_ids.0", "unknown_reference"),
        ({**good, "host_ids": [foreign[0]["id"]]}, "host_ids.0", "unknown_reference"),
        ({**good, "repository_id": str(uuid.uuid4())}, "repository_id", "unknown_reference"),
        (
            {**good, "scripts": [{"script_id": str(uuid.uuid4())}]},
            "scripts.0.script_id",
            "unknown_reference",
        ),
        (
            {**good, "schedule": "later", "scheduled_time": "2001-01-01T00:00:00Z"},
            "scheduled_time",
            "time_in_past",
        ),
        ({**good, "host_ids": []}, "host_ids", "validation_error"),
        ({**good, "host_ids": [hosts[0]["id"], hosts[0]["id"]]}, "host_ids", "validation_error"),
    ]
    for payload, field, code in cases:
        response = await deploy.client.post(
            "/api/v1/deployments", headers=deploy.admin.headers, json=payload
        )
        assert response.status_code == 422, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (field, error)
        assert error["details"]["errors"][0]["field"] == field
    listed = await deploy.client.get("/api/v1/deployments", headers=deploy.admin.headers)
    assert listed.json()["items"] == []


async def test_local_hosts_are_refused_unless_enabled(deploy: DeployBuilder, db: Database) -> None:
    repo = await deploy.repo(SCRIPTS)
    tenant = uuid.UUID(deploy.admin.tenant_id)
    async with db.session(tenant_id=tenant) as session:
        host = Host(tenant_id=tenant, name="this-box", type="local")
        session.add(host)
        await session.flush()
        host_id = str(host.id)
    response = await deploy.client.post(
        "/api/v1/deployments",
        headers=deploy.admin.headers,
        json={
            "name": "x",
            "repository_id": repo.id,
            "script_ids": [repo.scripts["check.sh"]],
            "host_ids": [host_id],
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "local_host_disabled"


async def test_viewer_cannot_create_or_cancel_and_other_tenants_see_nothing(
    deploy: DeployBuilder, other_admin: Account
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    viewer = await add_member(deploy.client, deploy.admin, "viewer")
    developer = await add_member(deploy.client, deploy.admin, "developer")
    payload = deploy.body(
        repo, hosts, ("check.sh", []), schedule="later", scheduled_time=in_seconds(600)
    )
    assert (
        await deploy.client.post("/api/v1/deployments", headers=viewer.headers, json=payload)
    ).status_code == 403
    created = await deploy.create(payload, account=developer)
    assert (await deploy.cancel(created["id"], account=viewer)).status_code == 403
    assert (await deploy.get(created["id"], account=viewer)).status_code == 200
    assert (await deploy.get(created["id"], account=other_admin)).status_code == 404
    assert (
        await deploy.client.get(
            f"/api/v1/deployments/{created['id']}/logs", headers=other_admin.headers
        )
    ).status_code == 404
    assert (await deploy.cancel(created["id"], account=developer)).status_code == 200


async def test_unknown_ref_is_refused_and_an_unreachable_repository_fails_at_checkout(
    deploy: DeployBuilder, db: Database
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    wrong_ref = await deploy.client.post(
        "/api/v1/deployments",
        headers=deploy.admin.headers,
        json=deploy.body(repo, hosts, ("check.sh", []), ref="no-such-branch"),
    )
    assert wrong_ref.status_code == 422, wrong_ref.text
    assert wrong_ref.json()["error"]["details"]["errors"][0]["field"] == "ref"
    tenant = uuid.UUID(deploy.admin.tenant_id)
    async with db.session(tenant_id=tenant) as session:
        gone = Repository(
            tenant_id=tenant,
            provider_type="url",
            name="gone",
            owner="nobody",
            url="http://127.0.0.1:1/gone.git",
            clone_url="http://127.0.0.1:1/gone.git",
            default_branch="main",
        )
        session.add(gone)
        await session.flush()
        gone_id = str(gone.id)
    deploy.worker.start()
    # The catalogue cannot be read, so the ids are checked when the worker checks out.
    deployment = await deploy.create(
        {
            "name": "x",
            "repository_id": gone_id,
            "script_ids": [repo.scripts["check.sh"]],
            "host_ids": [hosts[0]["id"]],
        }
    )
    done = await deploy.wait(deployment["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith("checkout of the default branch failed")
    messages = await deploy.messages(deployment["id"])
    assert any("checkout of the default branch failed" in m for m in messages)


async def test_one_executor_per_worker_holds_its_per_host_cap_across_deployments(
    deploy: DeployBuilder,
) -> None:
    """Two deployments on one host, one connection per host allowed: their scripts take turns.

    With an executor per deployment each would have had its own cap and they would overlap.
    """
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    deploy.worker.start(concurrency=4, ssh_max_connections_per_host=1)
    marker = f"cap-{uuid.uuid4().hex[:8]}"
    created = await asyncio.gather(
        *(
            deploy.create(deploy.body(repo, hosts, ("slow.sh", [f"{marker}-{n}", "1"])))
            for n in range(2)
        )
    )
    spans = []
    for deployment in created:
        done = await deploy.wait(deployment["id"])
        assert done["status"] == "success", done
        (script,) = await deploy.scripts(deployment["id"])
        spans.append(
            (
                datetime.fromisoformat(script["started_at"]),
                datetime.fromisoformat(script["completed_at"]),
            )
        )
    (_, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start, spans
