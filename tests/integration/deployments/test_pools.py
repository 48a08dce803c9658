"""Worker pools and target rules at run time, on real sshd hosts with in-process workers.

Each worker has its own name and pools; the worker recorded on each script row shows who ran it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import psycopg

from shipyard.db import to_libpq_url
from shipyard.jobs import pool_workers_alive
from shipyard.runtime import build_runtime, close_runtime
from shipyard.worker import run_worker
from tests.builders.deployments import DeployBuilder
from tests.integration.deployments.conftest import SCRIPTS
from tests.integration.deployments.test_run import remote_processes


def start_worker(deploy: DeployBuilder, name: str, pools: list[str], **overrides: Any) -> None:
    """A worker named ``name`` serving ``pools`` (stopped with the ``worker`` fixture)."""
    control = deploy.worker
    settings = control.settings.model_copy(update=overrides)

    async def work() -> None:
        runtime = build_runtime(settings, db=control.db)
        try:
            await run_worker(runtime=runtime, concurrency=20, name=name, pools=pools)
        finally:
            await close_runtime(runtime)

    control.tasks.append(asyncio.create_task(work()))


def sql(database_url: str, statement: str, *params: Any) -> None:
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute(statement, params)


async def add_group(
    deploy: DeployBuilder, hosts: list[dict[str, Any]], database_url: str, pool: str | None = None
) -> str:
    response = await deploy.client.post(
        "/api/v1/host-groups",
        headers=deploy.admin.headers,
        json={"name": f"g-{uuid.uuid4().hex[:6]}", "host_ids": [host["id"] for host in hosts]},
    )
    assert response.status_code == 201, response.text
    group_id: str = response.json()["id"]
    if pool is not None:
        sql(database_url, "UPDATE host_groups SET pool = %s WHERE id = %s", pool, group_id)
    return group_id


def set_host_pool(database_url: str, host: dict[str, Any], pool: str) -> None:
    sql(database_url, "UPDATE hosts SET pool = %s WHERE id = %s", pool, host["id"])


def workers_by_host(scripts: list[dict[str, Any]]) -> dict[str, set[str]]:
    """host id -> the names of the workers that ran its scripts ("name#job" -> "name")."""
    found: dict[str, set[str]] = {}
    for script in scripts:
        found.setdefault(script["host_id"], set()).add(
            (script["worker_id"] or "nobody").split("#")[0]
        )
    return found


async def test_each_pool_runs_on_its_workers_and_a_split_run_ends_with_every_hosts_outcome(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo(SCRIPTS)
    east = await deploy.hosts(2)
    west_ok = await deploy.hosts(1)
    west_bad = await deploy.hosts(1, name=f"bad-{uuid.uuid4().hex[:6]}")
    anywhere = await deploy.hosts(2)
    # One east host by its own pool, one by its group's; a host's own pool beats its group's.
    set_host_pool(database_url, east[0], "east")
    await add_group(deploy, [east[1], west_ok[0]], database_url, pool="east")
    set_host_pool(database_url, west_ok[0], "west")
    set_host_pool(database_url, west_bad[0], "west")
    start_worker(deploy, "east-worker", ["east"])
    start_worker(deploy, "west-worker", ["west"])
    start_worker(deploy, "plain-worker", [])

    every = [*east, *west_ok, *west_bad, *anywhere]
    done = await deploy.run(repo, every, ("deploy.sh", ["x"]), ("check.sh", []))
    assert done["status"] == "partial", done

    scripts = await deploy.scripts(done["id"])
    ran_by = workers_by_host(scripts)
    for host in east:
        assert ran_by[host["id"]] == {"east-worker"}, ran_by
    for host in [*west_ok, *west_bad]:
        assert ran_by[host["id"]] == {"west-worker"}, ran_by
    for host in anywhere:
        # No pool: whichever worker coordinated the run (pooled or not) ran it.
        assert len(ran_by[host["id"]]) == 1 and "nobody" not in ran_by[host["id"]], ran_by
    by_host = {(s["host_id"], s["name"]): s for s in scripts}
    assert by_host[(west_bad[0]["id"], "check.sh")]["status"] == "failed"
    assert by_host[(west_bad[0]["id"], "deploy.sh")]["status"] == "success"
    others = [s for s in scripts if s["host_id"] != west_bad[0]["id"]]
    assert {s["status"] for s in others} == {"success"}, [
        (s["name"], s["status"], s["error"], s["worker_id"])
        for s in others
        if s["status"] != "success"
    ]

    # Each pooled worker is counted alive in its pool (what "no worker of pool X" relies on).
    async with deploy.worker.db.session(system=True) as session:
        assert await pool_workers_alive(session, "east") == 1
        assert await pool_workers_alive(session, "nowhere") == 0

    messages = await deploy.messages(done["id"])
    for host in every:
        assert f"hello from {host['name']} args=x" in messages, host["name"]
    # Whichever worker coordinated ran its own pool's hosts itself and sent the others away;
    # either way the log says which worker ran each pool.
    for pool in ("east", "west"):
        assert any(m.startswith(f"Pool {pool}: ") and f"{pool}-worker#" in m for m in messages)
    assert messages[-1] == "Deployment partial: 5 of 6 hosts succeeded.", messages[-3:]


async def test_a_pool_without_workers_fails_its_hosts_within_the_wait(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo(SCRIPTS)
    stranded, reachable = await deploy.hosts(2)
    set_host_pool(database_url, stranded, "nowhere")
    start_worker(deploy, "plain-worker", [], pool_worker_wait_seconds=1.0)

    started = time.monotonic()
    done = await deploy.run(repo, [stranded, reachable], ("check.sh", []), timeout=20)
    assert time.monotonic() - started < 15
    assert done["status"] == "partial", done
    statuses = {s["host_id"]: s for s in await deploy.scripts(done["id"])}
    assert statuses[reachable["id"]]["status"] == "success"
    assert statuses[stranded["id"]]["status"] == "failed"
    assert statuses[stranded["id"]]["error"] == "no worker of pool nowhere is running"
    messages = await deploy.messages(done["id"])
    assert any(m.startswith("No worker of pool nowhere is running") for m in messages), messages


async def test_cancel_stops_every_part_of_a_split_run(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo(SCRIPTS)
    east, west, anywhere = await deploy.hosts(3)
    set_host_pool(database_url, east, "east")
    set_host_pool(database_url, west, "west")
    start_worker(deploy, "east-worker", ["east"])
    start_worker(deploy, "west-worker", ["west"])
    start_worker(deploy, "plain-worker", [])
    marker = f"split-{uuid.uuid4().hex[:8]}"
    deployment = await deploy.create(
        deploy.body(repo, [east, west, anywhere], ("slow.sh", [marker, "60"]), ("check.sh", []))
    )
    for _ in range(300):
        if len(remote_processes(marker)) >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(remote_processes(marker)) >= 3, "the scripts never started everywhere"

    assert (await deploy.cancel(deployment["id"])).status_code == 200
    done = await deploy.wait(deployment["id"], timeout=20)
    assert done["status"] == "cancelled", done
    for _ in range(50):
        if not remote_processes(marker):
            break
        await asyncio.sleep(0.1)
    assert remote_processes(marker) == []
    scripts = await deploy.scripts(deployment["id"])
    assert {s["status"] for s in scripts} <= {"cancelled", "skipped"}, scripts
    assert workers_by_host(scripts)[east["id"]] == {"east-worker"}


async def test_a_target_rule_is_resolved_when_the_run_starts(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo(SCRIPTS)
    first, later, outside = await deploy.hosts(3)
    group_id = await add_group(deploy, [first], database_url)
    deployment = await deploy.create(deploy.body(repo, [first], ("deploy.sh", [])))
    # Stored as a launch with a rule stores it; the group then gains a host before the start.
    sql(
        database_url,
        "UPDATE deployments SET target = %s::jsonb WHERE id = %s",
        json.dumps({"host_ids": [], "group_ids": [group_id], "tags": []}),
        deployment["id"],
    )
    joined = await deploy.client.patch(
        f"/api/v1/host-groups/{group_id}",
        headers=deploy.admin.headers,
        json={"host_ids": [first["id"], later["id"]]},
    )
    assert joined.status_code == 200, joined.text
    group_name = joined.json()["name"]

    # A rule that matches nothing when the run starts fails it, saying so.
    empty = await deploy.create(deploy.body(repo, [first], ("deploy.sh", [])))
    sql(
        database_url,
        "UPDATE deployments SET target = %s::jsonb WHERE id = %s",
        json.dumps({"host_ids": [], "group_ids": [group_id], "tags": ["nothing-has-this"]}),
        empty["id"],
    )
    deploy.worker.start()
    done = await deploy.wait(deployment["id"])
    assert done["status"] == "success", done
    assert sorted(done["host_ids"]) == sorted([first["id"], later["id"]])
    messages = await deploy.messages(done["id"])
    assert f"Target group {group_name} resolved to 2 hosts." in messages, messages
    assert f"hello from {later['name']} args=" in messages
    assert not any(outside["name"] in message for message in messages)

    failed = await deploy.wait(empty["id"])
    assert failed["status"] == "failed", failed
    assert failed["host_ids"] == []
    reason = f"Target group {group_name} + tag nothing-has-this resolved to no host"
    assert failed["error"].startswith(reason), failed["error"]
