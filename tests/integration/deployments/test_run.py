"""Deployments end to end: real git over HTTP, real sshd hosts, PostgreSQL and a worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from shipyard.config import Settings
from shipyard.db import Database, to_libpq_url
from shipyard.git.models import Repository
from shipyard.hosts.models import Host
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WaitForStatus, WorkerControl
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account, add_member

SECRET = "s3cr3t-" + uuid.uuid4().hex


def body(
    repo: Any, hosts: list[dict[str, Any]], *scripts: tuple[str, list[str]], **extra: Any
) -> dict[str, Any]:
    return {
        "name": extra.pop("name", "ship it"),
        "repository_id": repo.id,
        "scripts": [{"script_id": repo.scripts[path], "arguments": args} for path, args in scripts],
        "host_ids": [host["id"] for host in hosts],
        **extra,
    }


async def create(
    client: httpx.AsyncClient, account: Account, payload: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/api/v1/deployments", headers=account.headers, json=payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def all_logs(
    client: httpx.AsyncClient, account: Account, deployment_id: str, **params: Any
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": 5000, **params, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                f"/api/v1/deployments/{deployment_id}/logs", headers=account.headers, params=query
            )
        ).json()
        lines += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return lines
    raise AssertionError("log pages never ended")


def remote_processes(marker: str) -> list[str]:
    result = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


async def test_success_on_several_hosts_with_args_env_and_secret(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    database_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    assert "tools/never.txt" not in repo.scripts and "chatty.py" in repo.scripts
    hosts = await deploy_hosts(admin, 3)
    worker.start()
    deployment = await create(
        client,
        admin,
        body(
            repo,
            hosts,
            ("deploy.sh", ["alpha", "two words"]),
            ("check.sh", []),
            environment=[
                {"name": "REGION", "value": "eu-west"},
                {"name": "API_TOKEN", "value": SECRET, "secret": True},
            ],
        ),
    )
    assert deployment["secret_environment_names"] == ["API_TOKEN"]
    assert SECRET not in str(deployment)
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "success", done
    assert done["commit_sha"] == repo.hosted.head()
    assert done["started_at"] and done["completed_at"]
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    assert len(scripts) == 6
    assert {(s["status"], s["exit_code"]) for s in scripts} == {("success", 0)}
    assert {s["host_id"] for s in scripts} == {h["id"] for h in hosts}
    logs = await all_logs(client, admin, deployment["id"])
    messages = [line["message"] for line in logs]
    for host in hosts:
        assert f"hello from {host['name']} args=alpha two words" in messages
    assert "region=eu-west" in messages
    assert "token=***" in messages
    assert any(line["level"] == "ERROR" and line["message"] == "to stderr" for line in logs)
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
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    good = await deploy_hosts(admin, 2)
    bad = await deploy_hosts(admin, 1, name=f"bad-{uuid.uuid4().hex[:6]}")
    worker.start()
    deployment = await create(
        client, admin, body(repo, good + bad, ("check.sh", []), ("deploy.sh", []))
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "partial"
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    on_bad = sorted(
        (s for s in scripts if s["host_id"] == bad[0]["id"]), key=lambda s: s["position"]
    )
    assert [(s["status"], s["exit_code"]) for s in on_bad] == [("failed", 3), ("skipped", None)]
    assert "exited with code 3" in on_bad[0]["error"]
    assert "check failed on bad-" in on_bad[0]["output"]
    logs = await all_logs(client, admin, deployment["id"], host_id=bad[0]["id"], level="ERROR")
    assert any("exited with code 3" in line["message"] for line in logs)


async def test_unreachable_host_fails_with_a_clear_message(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    closed = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": "gone", "ip": "127.0.0.1", "port": 1, "user": "x", "password": "whatever-pw"},
    )
    assert closed.status_code == 201, closed.text
    worker.start()
    deployment = await create(client, admin, body(repo, [*hosts, closed.json()], ("check.sh", [])))
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "partial"
    logs = await all_logs(client, admin, deployment["id"], host_id=closed.json()["id"])
    assert any("refused" in line["message"].lower() for line in logs), logs


async def test_stop_on_first_failure_skips_the_remaining_hosts(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    bad = await deploy_hosts(admin, 1, name=f"bad-{uuid.uuid4().hex[:6]}")
    good = await deploy_hosts(admin, 3)
    worker.start()
    deployment = await create(
        client,
        admin,
        body(
            repo, bad + good, ("check.sh", []), options={"parallelism": 1, "stop_on_failure": True}
        ),
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "failed"
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    statuses = {s["host_id"]: s["status"] for s in scripts}
    assert statuses[bad[0]["id"]] == "failed"
    assert [statuses[h["id"]] for h in good] == ["skipped"] * 3


async def test_rolling_batches_abort_past_the_failure_threshold(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    first = await deploy_hosts(admin, 1)
    bad = await deploy_hosts(admin, 1, name=f"bad-{uuid.uuid4().hex[:6]}")
    rest = await deploy_hosts(admin, 2)
    worker.start()
    deployment = await create(
        client,
        admin,
        body(
            repo,
            first + bad + rest,
            ("check.sh", []),
            options={"batch_size": 2, "max_failure_percent": 25},
        ),
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "partial"
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    statuses = {s["host_id"]: s["status"] for s in scripts}
    assert statuses[first[0]["id"]] == "success" and statuses[bad[0]["id"]] == "failed"
    assert [statuses[h["id"]] for h in rest] == ["skipped", "skipped"]
    logs = [line["message"] for line in await all_logs(client, admin, deployment["id"])]
    assert any("Batch 1 of 2" in m for m in logs)
    assert any("threshold" in m for m in logs)
    assert not any("Batch 2 of 2" in m for m in logs)


async def test_timeout_fails_the_script_and_stops_the_remote_process(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    marker = f"timeout-{uuid.uuid4().hex[:8]}"
    worker.start()
    deployment = await create(
        client,
        admin,
        body(
            repo,
            hosts,
            ("slow.sh", [marker, "60"]),
            ("check.sh", []),
            options={"script_timeout_seconds": 2},
        ),
    )
    done = await wait_for_status(admin, deployment["id"], timeout=30)
    assert done["status"] == "failed"
    scripts = sorted(
        (
            await client.get(
                f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers
            )
        ).json(),
        key=lambda s: s["position"],
    )
    assert scripts[0]["status"] == "failed" and "timed out after 2 s" in scripts[0]["error"]
    assert scripts[1]["status"] == "skipped"
    await asyncio.sleep(0.5)
    assert remote_processes(marker) == []


async def test_cancel_a_running_deployment_kills_remote_processes(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 2)
    marker = f"cancel-{uuid.uuid4().hex[:8]}"
    worker.start()
    deployment = await create(
        client, admin, body(repo, hosts, ("slow.sh", [marker, "60"]), ("check.sh", []))
    )
    for _ in range(200):
        if len(remote_processes(marker)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert remote_processes(marker), "the script never started"
    cancelled = await client.post(
        f"/api/v1/deployments/{deployment['id']}/cancel", headers=admin.headers
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["cancel_requested_at"]
    done = await wait_for_status(admin, deployment["id"], timeout=20)
    assert done["status"] == "cancelled"
    await asyncio.sleep(0.5)
    assert remote_processes(marker) == []
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    assert {s["status"] for s in scripts} <= {"cancelled", "skipped"}
    again = await client.post(
        f"/api/v1/deployments/{deployment['id']}/cancel", headers=admin.headers
    )
    assert again.status_code == 409


async def test_cancel_while_pending_or_scheduled_never_runs(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    database_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    counter = f"/tmp/sy-count-{uuid.uuid4().hex}"
    pending = await create(client, admin, body(repo, hosts, ("count.sh", [counter])))
    assert pending["status"] == "pending"
    later = await _in_seconds(client, 3)
    scheduled = await create(
        client,
        admin,
        body(repo, hosts, ("count.sh", [counter]), schedule="later", scheduled_time=later),
    )
    assert scheduled["status"] == "scheduled"
    for item in (pending, scheduled):
        response = await client.post(
            f"/api/v1/deployments/{item['id']}/cancel", headers=admin.headers
        )
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
    worker.start()
    await asyncio.sleep(4.5)
    for item in (pending, scheduled):
        again = (
            await client.get(f"/api/v1/deployments/{item['id']}", headers=admin.headers)
        ).json()
        assert again["status"] == "cancelled" and again["started_at"] is None
    assert not os.path.exists(counter)


async def _in_seconds(client: httpx.AsyncClient, seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_scheduled_deployment_starts_on_time_and_can_be_rescheduled(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    first_time = await _in_seconds(client, 30)
    deployment = await create(
        client,
        admin,
        body(repo, hosts, ("check.sh", []), schedule="later", scheduled_time=first_time),
    )
    moved_to = await _in_seconds(client, 2.5)
    moved = await client.patch(
        f"/api/v1/deployments/{deployment['id']}",
        headers=admin.headers,
        json={"scheduled_time": moved_to},
    )
    assert moved.status_code == 200, moved.text
    worker.start()
    done = await wait_for_status(admin, deployment["id"], timeout=30)
    assert done["status"] == "success"
    started = datetime.fromisoformat(done["started_at"])
    planned = datetime.fromisoformat(done["scheduled_time"])
    assert 0 <= (started - planned).total_seconds() < 1.0, (started, planned)
    late = await client.patch(
        f"/api/v1/deployments/{deployment['id']}",
        headers=admin.headers,
        json={"scheduled_time": moved_to},
    )
    assert late.status_code == 409


async def test_scheduled_deployment_survives_a_worker_restart(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    first = worker.start()
    deployment = await create(
        client,
        admin,
        body(
            repo,
            hosts,
            ("check.sh", []),
            schedule="later",
            scheduled_time=await _in_seconds(client, 2),
        ),
    )
    await asyncio.sleep(0.5)
    await worker.stop(first)  # every worker gone before the time comes
    await asyncio.sleep(2.5)
    still = (
        await client.get(f"/api/v1/deployments/{deployment['id']}", headers=admin.headers)
    ).json()
    assert still["status"] == "scheduled"
    worker.start()
    done = await wait_for_status(admin, deployment["id"], timeout=30)
    assert done["status"] == "success"


async def test_rerun_runs_the_same_inputs_again(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start()
    first = await create(
        client,
        admin,
        body(
            repo,
            hosts,
            ("deploy.sh", ["again"]),
            environment=[{"name": "API_TOKEN", "value": SECRET, "secret": True}],
        ),
    )
    await wait_for_status(admin, first["id"])
    rerun = await client.post(f"/api/v1/deployments/{first['id']}/rerun", headers=admin.headers)
    assert rerun.status_code == 201, rerun.text
    second = rerun.json()
    assert second["rerun_of"] == first["id"] and second["id"] != first["id"]
    assert second["secret_environment_names"] == ["API_TOKEN"]
    done = await wait_for_status(admin, second["id"])
    assert done["status"] == "success"
    messages = [line["message"] for line in await all_logs(client, admin, second["id"])]
    assert any("args=again" in m for m in messages) and "token=***" in messages


async def test_delete_only_when_not_running(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    marker = f"delete-{uuid.uuid4().hex[:8]}"
    worker.start()
    deployment = await create(client, admin, body(repo, hosts, ("slow.sh", [marker, "30"])))
    await wait_for_status(admin, deployment["id"], {"in_progress"})
    refused = await client.delete(f"/api/v1/deployments/{deployment['id']}", headers=admin.headers)
    assert refused.status_code == 409
    await client.post(f"/api/v1/deployments/{deployment['id']}/cancel", headers=admin.headers)
    await wait_for_status(admin, deployment["id"])
    assert (
        await client.delete(f"/api/v1/deployments/{deployment['id']}", headers=admin.headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/v1/deployments/{deployment['id']}", headers=admin.headers)
    ).status_code == 404


async def test_create_validation_names_the_field(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    foreign = await deploy_hosts(other_admin, 1)
    good = body(repo, hosts, ("check.sh", []))
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
        response = await client.post("/api/v1/deployments", headers=admin.headers, json=payload)
        assert response.status_code == 422, (field, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (field, error)
        assert error["details"]["errors"][0]["field"] == field
    assert (await client.get("/api/v1/deployments", headers=admin.headers)).json()["items"] == []


async def test_local_hosts_are_refused_unless_enabled(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    db: Database,
    settings: Settings,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    async with db.session(tenant_id=uuid.UUID(admin.tenant_id)) as session:
        host = Host(tenant_id=uuid.UUID(admin.tenant_id), name="this-box", type="local")
        session.add(host)
        await session.flush()
        host_id = str(host.id)
    response = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
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
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    viewer = await add_member(client, admin, "viewer")
    developer = await add_member(client, admin, "developer")
    payload = body(
        repo,
        hosts,
        ("check.sh", []),
        schedule="later",
        scheduled_time=await _in_seconds(client, 600),
    )
    assert (
        await client.post("/api/v1/deployments", headers=viewer.headers, json=payload)
    ).status_code == 403
    created = await create(client, developer, payload)
    assert (
        await client.post(f"/api/v1/deployments/{created['id']}/cancel", headers=viewer.headers)
    ).status_code == 403
    assert (
        await client.get(f"/api/v1/deployments/{created['id']}", headers=viewer.headers)
    ).status_code == 200
    assert (
        await client.get(f"/api/v1/deployments/{created['id']}", headers=other_admin.headers)
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/deployments/{created['id']}/logs", headers=other_admin.headers)
    ).status_code == 404
    assert (
        await client.post(f"/api/v1/deployments/{created['id']}/cancel", headers=developer.headers)
    ).status_code == 200


async def test_unknown_ref_is_refused_and_an_unreachable_repository_fails_at_checkout(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    db: Database,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    wrong_ref = await client.post(
        "/api/v1/deployments",
        headers=admin.headers,
        json={**body(repo, hosts, ("check.sh", [])), "ref": "no-such-branch"},
    )
    assert wrong_ref.status_code == 422, wrong_ref.text
    assert wrong_ref.json()["error"]["details"]["errors"][0]["field"] == "ref"
    tenant = uuid.UUID(admin.tenant_id)
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
    worker.start()
    # The catalogue cannot be read, so the ids are checked when the worker checks out.
    deployment = await create(
        client,
        admin,
        {
            "name": "x",
            "repository_id": gone_id,
            "script_ids": [repo.scripts["check.sh"]],
            "host_ids": [hosts[0]["id"]],
        },
    )
    done = await wait_for_status(admin, deployment["id"])
    assert done["status"] == "failed"
    assert done["error"].startswith("checkout of the default branch failed")
    messages = [line["message"] for line in await all_logs(client, admin, deployment["id"])]
    assert any("checkout of the default branch failed" in m for m in messages)


async def test_one_executor_per_worker_holds_its_per_host_cap_across_deployments(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
) -> None:
    """Two deployments on one host, one connection per host allowed: their scripts take turns.

    With an executor per deployment each would have had its own cap and they would overlap.
    """
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start(concurrency=4, ssh_max_connections_per_host=1)
    marker = f"cap-{uuid.uuid4().hex[:8]}"
    created = await asyncio.gather(
        *(
            create(client, admin, body(repo, hosts, ("slow.sh", [f"{marker}-{n}", "1"])))
            for n in range(2)
        )
    )
    spans = []
    for deployment in created:
        done = await wait_for_status(admin, deployment["id"])
        assert done["status"] == "success", done
        (script,) = (
            await client.get(
                f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers
            )
        ).json()
        spans.append(
            (
                datetime.fromisoformat(script["started_at"]),
                datetime.fromisoformat(script["completed_at"]),
            )
        )
    (_, first_end), (second_start, _) = sorted(spans)
    assert first_end <= second_start, spans
