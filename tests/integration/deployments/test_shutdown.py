"""A worker stopping mid-deployment on real sshd hosts: SIGTERM drains, a lost worker is cleaned
up after, and a PostgreSQL outage never makes a script run twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.heartbeats import Drain
from shipyard.deployments.models import DeploymentScript
from shipyard.runtime import build_runtime, close_runtime
from shipyard.worker import run_worker, stop_worker
from tests.builders.deployments import DeployBuilder
from tests.integration.core.test_worker_outage import outage
from tests.integration.deployments.conftest import SCRIPTS
from tests.integration.deployments.test_run import remote_processes
from tests.support.postgres import PostgresForTests

FAST = {
    "worker_heartbeat_seconds": 0.3,
    "worker_poll_interval_seconds": 0.2,
    "worker_lost_after_seconds": 3.0,
}


async def until(check: Any, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s")


async def running_on_host(marker: str, count: int = 1) -> None:
    async def started() -> bool:
        return len(remote_processes(marker)) >= count

    await until(started, seconds=30, what=f"{count} remote script(s) with {marker} running")


async def script_rows(db: Database, deployment_id: str) -> list[DeploymentScript]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(DeploymentScript)
            .where(DeploymentScript.deployment_id == uuid.UUID(deployment_id))
            .order_by(DeploymentScript.host_id, DeploymentScript.position)
        )
        return list(rows)


@contextlib.asynccontextmanager
async def drainable_worker(
    db: Database, settings: Settings
) -> AsyncIterator[tuple[asyncio.Task[None], Drain]]:
    """An in-process worker whose drain the test starts as the signal handler does."""
    runtime = build_runtime(settings.model_copy(update=FAST), db=db)
    drain = Drain()
    task = asyncio.create_task(run_worker(runtime=runtime, concurrency=10, drain=drain))
    try:
        yield task, drain
    finally:
        if not task.done():
            drain.expire()
            await stop_worker(task, drain, grace=0)
        await close_runtime(runtime)


@contextlib.contextmanager
def worker_process(database_url: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``python -m shipyard worker`` on the test's database."""
    process = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "worker", "--concurrency", "5"],
        env={
            **os.environ,
            "SHIPYARD_DATABASE_URL": database_url,
            "SHIPYARD_WORKER_POLL_INTERVAL_SECONDS": "0.2",
            "SHIPYARD_WORKER_HEARTBEAT_SECONDS": "0.3",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


async def test_sigterm_drain_lets_short_scripts_finish_and_interrupts_long_ones_at_once(
    deploy: DeployBuilder,
    db: Database,
    settings: Settings,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(2)
    short, long = f"short-{uuid.uuid4().hex[:8]}", f"long-{uuid.uuid4().hex[:8]}"
    grace = 4.0
    async with drainable_worker(db, settings) as (task, drain):
        finishing = await deploy.create(deploy.body(repo, hosts[:1], ("slow.sh", [short, "2"])))
        stuck = await deploy.create(
            deploy.body(repo, hosts[1:], ("slow.sh", [long, "120"]), ("check.sh", [])),
        )
        await running_on_host(short)
        await running_on_host(long)
        # What SIGTERM does: drain for the grace period, stop taking jobs.
        stopping = asyncio.create_task(stop_worker(task, drain, grace=grace))
        await asyncio.sleep(0.5)
        late = await deploy.create(deploy.body(repo, hosts[:1], ("check.sh", [])))
        started = time.monotonic()
        done = await deploy.wait(finishing["id"], timeout=30)
        assert done["status"] == "success"
        interrupted = await deploy.wait(stuck["id"], timeout=30)
        assert interrupted["status"] == "interrupted"
        # At once: at the end of the grace period plus the kill, not "lost" much later.
        assert time.monotonic() - started < grace + 8
        await asyncio.wait_for(stopping, timeout=30)
    assert remote_processes(long) == [], "the interrupted script still runs on its host"
    rows = await script_rows(db, stuck["id"])
    assert [row.status for row in rows] == ["interrupted", "interrupted"]
    assert "grace period" in (rows[0].error or "")
    logs = " ".join(await deploy.messages(stuck["id"]))
    assert "shutting down" in logs and "Deployment interrupted" in logs
    # A stopping worker takes no new job: the deployment created meanwhile waits for another.
    waiting = (await deploy.get(late["id"])).json()
    assert waiting["status"] == "pending"


async def test_sigterm_to_a_worker_process_interrupts_its_deployment_and_exits_cleanly(
    deploy: DeployBuilder,
    database_url: str,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    marker = f"term-{uuid.uuid4().hex[:8]}"
    with worker_process(database_url, SHIPYARD_WORKER_SHUTDOWN_GRACE_SECONDS="1") as process:
        deployment = await deploy.create(deploy.body(repo, hosts, ("slow.sh", [marker, "120"])))
        await running_on_host(marker)
        process.send_signal(signal.SIGTERM)
        done = await deploy.wait(deployment["id"], timeout=30)
        assert done["status"] == "interrupted"
        assert await asyncio.to_thread(process.wait, 30) == 0
    assert remote_processes(marker) == []
    scripts = await deploy.scripts(deployment["id"])
    assert [s["status"] for s in scripts] == ["interrupted"]


async def test_a_lost_worker_s_remote_script_is_stopped_and_its_temp_dir_removed(
    deploy: DeployBuilder,
    db: Database,
    database_url: str,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    marker = f"lost-{uuid.uuid4().hex[:8]}"
    with worker_process(database_url) as process:
        deployment = await deploy.create(deploy.body(repo, hosts, ("slow.sh", [marker, "120"])))
        await running_on_host(marker)

        async def pid_recorded() -> bool:
            rows = await script_rows(db, deployment["id"])
            return bool(rows) and rows[0].remote_pgid is not None

        await until(pid_recorded, seconds=10, what="the remote PID recorded")
        process.kill()  # kill -9: no drain, no clean-up of its own
        process.wait(timeout=10)
    row = (await script_rows(db, deployment["id"]))[0]
    assert row.remote_temp_dir and Path(row.remote_temp_dir).is_dir()
    assert remote_processes(marker), "kill -9 of the worker should leave the script running"
    deploy.worker.start()  # its sweep finds the stale heartbeat
    done = await deploy.wait(deployment["id"], timeout=40)
    assert done["status"] == "failed" and done["error"] == "worker lost"

    async def cleaned() -> bool:
        return not remote_processes(marker) and not Path(row.remote_temp_dir or "").exists()

    await until(cleaned, seconds=30, what="the remote script stopped and its directory removed")

    async def said() -> bool:
        logs = " ".join(await deploy.messages(deployment["id"]))
        return (
            f"stopped the lost worker's script (process group {row.remote_pgid})" in logs
            and f"removed temporary directory {row.remote_temp_dir}" in logs
        )

    await until(said, seconds=10, what="the clean-up told on the deployment's log")


async def test_a_database_outage_mid_deployment_ends_in_a_final_state_without_rerunning(
    deploy: DeployBuilder,
    postgres: PostgresForTests,
    database_url: str,
) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    counter = Path(f"/tmp/sy-count-{uuid.uuid4().hex}")
    marker = f"outage-{uuid.uuid4().hex[:8]}"
    deploy.worker.start(worker_restart_max_backoff_seconds=0.5)
    deployment = await deploy.create(
        deploy.body(repo, hosts, ("count.sh", [str(counter)]), ("slow.sh", [marker, "4"])),
    )
    await running_on_host(marker)
    with outage(postgres, database_url):
        await asyncio.sleep(3)
    done = await deploy.wait(deployment["id"], timeout=90)
    assert done["status"] in {"success", "failed"}
    if done["status"] == "failed":
        assert done["error"], "a failure after an outage must say why"
    # Whatever the outcome, no script ran twice.
    await asyncio.sleep(2)
    try:
        assert counter.read_text().splitlines() == ["run"]
    finally:
        counter.unlink(missing_ok=True)
    assert remote_processes(marker) == []
