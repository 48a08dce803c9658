"""One executor per worker process: its per-host cap holds across every deployment it runs.

Three deployments to the same host run at once on one worker whose cap is one connection per
host. Every one of them must connect through the worker's ``runtime.executor`` (an executor built
per deployment would not see the others and would open three connections at once), and the
host must never see two of them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.hosts.executor import Executor, HostConnection, HostTarget
from shipyard.runtime import build_runtime, close_runtime
from shipyard.worker import run_worker
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WaitForStatus
from tests.support.api import Account
from tests.support.git_server import GitFile

DEPLOYMENTS = 3
# Fails when another deployment holds the host: mkdir is atomic, so two at once cannot both win.
SCRIPTS = {
    "hold.sh": GitFile(
        '#!/bin/sh\nif ! mkdir "$1" 2>/dev/null; then echo "another deployment is here"; exit 9; fi\n'
        'sleep 2\nrmdir "$1"\necho "held alone"\n'
    )
}


class ConnectionWatch:
    """Counts the connections an executor opens: in total, at once, and asked for at once."""

    def __init__(self, executor: Executor) -> None:
        self.real_connect = executor.connect
        self.opened = 0
        self.open = 0
        self.most_open = 0
        self.waiting = 0
        self.most_waiting = 0

    @asynccontextmanager
    async def connect(self, target: HostTarget) -> AsyncIterator[HostConnection]:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        connected = False
        try:
            async with self.real_connect(target) as connection:
                connected = True
                self.waiting -= 1
                self.opened += 1
                self.open += 1
                self.most_open = max(self.most_open, self.open)
                try:
                    yield connection
                finally:
                    self.open -= 1
        finally:
            if not connected:
                self.waiting -= 1


async def test_one_executor_holds_the_per_host_cap_across_deployments(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    wait_for_status: WaitForStatus,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    (host,) = await deploy_hosts(admin, 1)
    worker_settings = settings.model_copy(
        update={
            "ssh_max_connections_per_host": 1,
            "worker_heartbeat_seconds": 0.3,
            "worker_poll_interval_seconds": 0.2,
        }
    )
    runtime = build_runtime(worker_settings, db=db)
    watch = ConnectionWatch(runtime.executor)
    monkeypatch.setattr(runtime.executor, "connect", watch.connect)
    worker = asyncio.create_task(run_worker(runtime=runtime, concurrency=DEPLOYMENTS + 1))
    try:
        marker = f"/tmp/shipyard-cap-{uuid.uuid4().hex}"
        created = []
        for number in range(DEPLOYMENTS):
            response = await client.post(
                "/api/v1/deployments",
                headers=admin.headers,
                json={
                    "name": f"cap {number}",
                    "repository_id": repo.id,
                    "scripts": [{"script_id": repo.scripts["hold.sh"], "arguments": [marker]}],
                    "host_ids": [host["id"]],
                },
            )
            assert response.status_code == 201, response.text
            created.append(response.json()["id"])
        finished = [await wait_for_status(admin, deployment_id) for deployment_id in created]
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await close_runtime(runtime)
    for deployment in finished:
        if deployment["status"] != "success":
            logs = await client.get(
                f"/api/v1/deployments/{deployment['id']}/logs", headers=admin.headers
            )
            raise AssertionError(f"{deployment}\n{logs.text}")
    # Every deployment connected through the worker's one executor...
    assert watch.opened == DEPLOYMENTS
    # ...they were running together (queued on its cap, not one after another by chance)...
    assert watch.most_waiting >= 2
    # ...and its cap of one connection to the host held across all of them.
    assert watch.most_open == 1
