"""Deployments notify: a run failing on a real sshd host sends its message (name, status, who
started it, commit, the failed host with its exit code, the link) through the job queue; a
run that succeeds sends "started" and "succeeded"; "partial" is not "failed"."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.builders.deployments import DeployBuilder
from tests.integration.deployments.conftest import SCRIPTS
from tests.integration.notifications.conftest import create_channel, create_rule
from tests.integration.notifications.receivers import HttpReceiver, http_receiver
from tests.support.api import Account


async def messages_for(
    receiver: HttpReceiver, deployment_id: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The webhook bodies about ``deployment_id`` once ``count`` have arrived."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [r.json() for r in receiver.requests if r.json().get("subject_id") == deployment_id]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)


async def test_failed_run_on_real_sshd_notifies_with_host_exit_code_and_link(
    deploy: DeployBuilder, client: httpx.AsyncClient, admin: Account
) -> None:
    async with http_receiver() as receiver:
        channel = await create_channel(client, admin, "webhook", {"url": f"{receiver.url}/h"})
        await create_rule(
            client,
            admin,
            channel["id"],
            ["deployment.started", "deployment.failed", "deployment.succeeded"],
        )
        repo = await deploy.repo(SCRIPTS)
        bad = await deploy.hosts(1, name=f"bad-{uuid.uuid4().hex[:6]}")
        done = await deploy.run(repo, bad, ("check.sh", []))
        assert done["status"] == "failed"
        found = await messages_for(receiver, done["id"], 2)
        good = await deploy.hosts(1)
        ok = await deploy.run(repo, good, ("check.sh", []))
        assert ok["status"] == "success"
        succeeded = await messages_for(receiver, ok["id"], 2)
        partial = await deploy.run(repo, good + bad, ("check.sh", []))
        assert partial["status"] == "partial"
        partial_messages = await messages_for(receiver, partial["id"], 1)
        await asyncio.sleep(0.5)  # a "failed" for the partial run would have come by now
        partial_messages = await messages_for(receiver, partial["id"], 1)
    events = sorted(message["event"] for message in found)
    assert events == ["deployment.failed", "deployment.started"]
    failed = next(m for m in found if m["event"] == "deployment.failed")
    assert failed["status"] == "failed"
    assert failed["title"] == done["name"]
    assert failed["triggered_by"] == admin.email
    assert failed["commit_sha"] and failed["commit_sha"] == done.get(
        "commit_sha", failed["commit_sha"]
    )
    assert failed["failed_hosts"] == [
        {"name": bad[0]["name"], "exit_code": 3, "error": failed["failed_hosts"][0]["error"]}
    ]
    assert failed["link"] == f"https://shipyard.example.com/deployments/{done['id']}"
    assert f"{bad[0]['name']}: exit code 3" in failed["text"]
    assert sorted(m["event"] for m in succeeded) == ["deployment.started", "deployment.succeeded"]
    # The partial run: started only (the rule does not ask for partial; failed is not partial).
    assert [m["event"] for m in partial_messages] == ["deployment.started"]
