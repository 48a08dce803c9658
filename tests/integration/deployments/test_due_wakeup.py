"""Runs falling due wake the worker (LISTEN/NOTIFY and a due-time timer), not its poll."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.builders.deployments import DeployBuilder
from tests.integration.deployments.conftest import SCRIPTS


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def lag(done: dict[str, str]) -> float:
    started = datetime.fromisoformat(done["started_at"])
    return (started - datetime.fromisoformat(done["scheduled_time"])).total_seconds()


async def test_runs_due_soon_start_on_time_with_a_slow_poll(deploy: DeployBuilder) -> None:
    repo = await deploy.repo(SCRIPTS)
    hosts = await deploy.hosts(1)
    # A poll this slow would start the runs up to 30 s late: only the wake-ups can be on time.
    deploy.worker.start(worker_poll_interval_seconds=30.0)
    await asyncio.sleep(1.0)  # the worker has made its first fetch and waits
    created = await deploy.create(
        deploy.body(repo, hosts, ("check.sh", []), schedule="later", scheduled_time=in_seconds(4))
    )
    # A run moved from far away to soon (the reschedule API) is woken for as well.
    moved = await deploy.create(
        deploy.body(repo, hosts, ("check.sh", []), schedule="later", scheduled_time=in_seconds(600))
    )
    response = await deploy.client.patch(
        f"/api/v1/deployments/{moved['id']}",
        headers=deploy.admin.headers,
        json={"scheduled_time": in_seconds(3.5)},
    )
    assert response.status_code == 200, response.text
    for item in (created, moved):
        done = await deploy.wait(item["id"], timeout=20)
        assert done["status"] == "success", done
        assert 0 <= lag(done) < 1.0, (done["scheduled_time"], done["started_at"])
