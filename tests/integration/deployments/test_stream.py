"""The live log stream (SSE) and crash recovery, each with real processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WaitForStatus, WorkerControl
from tests.integration.deployments.conftest import SCRIPTS
from tests.integration.deployments.test_run import remote_processes
from tests.support import canary
from tests.support.api import Account
from tests.support.deployments_api import all_logs, body, create
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def read_events(
    base_url: str,
    account: Account,
    deployment_id: str,
    *,
    last_event_id: str | None = None,
    stop_after: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str | None]:
    """Log events (and the end event) from the stream; stops early after ``stop_after`` logs."""
    headers = dict(account.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    logs: list[dict[str, Any]] = []
    end = None
    last_id = last_event_id
    event = None
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
        http.stream(
            "GET", f"/api/v1/deployments/{deployment_id}/logs/stream", headers=headers
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("id: "):
                last_id = line[4:]
            elif line.startswith("data: ") and event == "log":
                logs.append(json.loads(line[6:]))
                if stop_after is not None and len(logs) >= stop_after:
                    break
            elif line.startswith("data: ") and event == "end":
                end = json.loads(line[6:])
                break
    return logs, end, last_id


async def test_stream_follows_live_and_resumes_without_gaps_or_duplicates(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    base_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 2)
    worker.start()
    deployment = await create(client, admin, body(repo, hosts, ("chatty.py", ["3000"])))
    first, end, last_id = await read_events(base_url, admin, deployment["id"], stop_after=700)
    assert end is None and len(first) == 700
    rest, end, _ = await read_events(base_url, admin, deployment["id"], last_event_id=last_id)
    assert end == {"status": "success"}
    streamed = first + rest
    stored = await all_logs(client, admin, deployment["id"])
    assert [(line["seq"], line["message"]) for line in streamed] == [
        (line["seq"], line["message"]) for line in stored
    ]
    assert sum(1 for line in stored if line["message"].startswith("line ")) == 6000


async def test_stream_of_a_finished_deployment_replays_and_ends(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    base_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 1)
    worker.start()
    deployment = await create(client, admin, body(repo, hosts, ("check.sh", [])))
    await wait_for_status(admin, deployment["id"])
    logs, end, _ = await read_events(base_url, admin, deployment["id"])
    assert end == {"status": "success"}
    assert any(line["message"] == "check ok" for line in logs)
    bad = await client.get(
        f"/api/v1/deployments/{deployment['id']}/logs/stream",
        headers={**admin.headers, "Last-Event-ID": "abc"},
    )
    assert bad.status_code == 422


async def test_worker_killed_mid_run_is_detected_and_nothing_runs_twice(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    wait_for_status: WaitForStatus,
    database_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    hosts = await deploy_hosts(admin, 2)
    # The scripts run as the sshd test user, who cannot enter pytest's private tmp_path.
    shared = Path(tempfile.mkdtemp(prefix="sy-crash-", dir="/tmp"))
    os.chmod(shared, 0o777)
    counter = shared / "runs.txt"
    marker = f"crash-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_WORKER_HEARTBEAT_SECONDS": "0.3",
        "SHIPYARD_WORKER_POLL_INTERVAL_SECONDS": "0.2",
        # The default level: its log is searched by the secret canary, as a user's would be.
        "SHIPYARD_LOG_LEVEL": "INFO",
    }
    with canary.output_path("shipyard-worker").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "worker", "--concurrency", "4"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deployment = await create(
            client,
            admin,
            body(repo, hosts, ("count.sh", [str(counter)]), ("slow.sh", [marker, "120"])),
        )
        for _ in range(300):
            if len(remote_processes(marker)) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(remote_processes(marker)) >= 2, "the slow script never started"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    running = (
        await client.get(f"/api/v1/deployments/{deployment['id']}", headers=admin.headers)
    ).json()
    assert running["status"] == "in_progress"
    worker.start()  # another worker: its sweep finds the stale heartbeat
    done = await wait_for_status(admin, deployment["id"], timeout=30)
    assert done["status"] == "failed"
    assert done["error"] == "worker lost"
    scripts = (
        await client.get(f"/api/v1/deployments/{deployment['id']}/scripts", headers=admin.headers)
    ).json()
    by_name: dict[str, set[tuple[str, str | None]]] = {}
    for row in scripts:
        by_name.setdefault(row["name"], set()).add((row["status"], row["error"]))
    assert by_name["count.sh"] == {("success", None)}
    assert by_name["slow.sh"] == {("failed", "worker lost")}
    # The completed script ran exactly once per host, before and after the crash.
    await asyncio.sleep(1.0)
    assert counter.read_text().splitlines() == ["run", "run"]
    messages = [line["message"] for line in await all_logs(client, admin, deployment["id"])]
    assert messages.count("counted") == 2
    assert any("was lost" in message for message in messages)
    for line in remote_processes(marker):
        os.kill(int(line.split()[0]), signal.SIGKILL)
    shutil.rmtree(shared, ignore_errors=True)
