"""``shipyard approvals ...`` with ``-o json``, and ``shipyard run --wait`` on a run that waits
for approval: a rejection ends it ``cancelled`` and the command exits 5."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shipyard.client import exits
from shipyard.config import Settings
from shipyard.db import Database
from tests.builders.deployments import DeployBuilder
from tests.integration.approvals.test_approvals import launch, make_template
from tests.integration.deployments.test_cli_json import split_stream
from tests.support.api import Account, add_member
from tests.support.cli_process import run_shipyard_json, run_shipyard_ndjson
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_approvals_in_json_and_a_rejected_run_exits_5(
    deploy: DeployBuilder, base_url: str
) -> None:
    template = await make_template(deploy)
    reviewer = await add_member(deploy.client, deploy.admin, "developer")

    async def json_of(account: Account, *args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, account.token, *args, label="approvals-json")

    kept = await launch(deploy, template["id"], deploy.admin)
    dropped = await launch(deploy, template["id"], deploy.admin)
    code, pending, err = await json_of(reviewer, "approvals", "list")
    assert code == 0, err
    assert [item["deployment_id"] for item in pending] == [kept["id"], dropped["id"]]
    assert pending[0]["template"]["id"] == template["id"] and pending[0]["can_decide"] is True
    assert pending[0]["approvals_needed"] == 1 and pending[0]["approvals"] == []
    code, every, err = await json_of(deploy.admin, "approvals", "list", "--all")
    assert code == 0, err
    assert {row["can_decide"] for row in every} == {False}  # the admin launched them

    code, approved, err = await json_of(reviewer, "approvals", "approve", kept["id"], "-m", "ok")
    assert code == 0, err
    assert approved["id"] == kept["id"] and approved["status"] != "pending_approval"
    assert [row["decision"] for row in approved["approvals"]] == ["approved"]
    code, rejected, err = await json_of(
        reviewer, "approvals", "reject", dropped["id"], "--comment", "not today"
    )
    assert code == 0, err
    assert rejected["status"] == "cancelled"
    assert rejected["error"] == f"rejected by {reviewer.email}: not today"

    # A run that waits: rejected through the API meanwhile (the test runner's commands share
    # sys.stdout, so no second command runs beside it).
    waiting = asyncio.create_task(
        run_shipyard_ndjson(
            base_url, deploy.admin.token, "run", template["name"], "--wait", label="run-approval"
        )
    )
    known = {kept["id"], dropped["id"]}
    run_id = None
    for _ in range(200):
        listed = await deploy.client.get("/api/v1/approvals", headers=reviewer.headers)
        fresh = [row["deployment_id"] for row in listed.json() if row["deployment_id"] not in known]
        if fresh:
            (run_id,) = fresh
            break
        await asyncio.sleep(0.1)
    assert run_id is not None, "the run never waited for approval"
    refused = await deploy.client.post(
        f"/api/v1/deployments/{run_id}/reject",
        headers=reviewer.headers,
        json={"comment": "no"},
    )
    assert refused.status_code == 200, refused.text

    code, events, err = await asyncio.wait_for(waiting, timeout=60)
    assert code == exits.APPROVAL == 5, err
    _, summary = split_stream(events)
    assert summary["deployment"]["id"] == run_id
    assert summary["deployment"]["status"] == "cancelled"
    assert summary["deployment"]["error"] == f"rejected by {reviewer.email}: no"
