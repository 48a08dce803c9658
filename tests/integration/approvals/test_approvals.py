"""Approvals on real runs: a template that requires two approvals holds its run (a real worker
runs, no script starts) until the second approval, then it succeeds on a real sshd host; a
rejection cancels it with the comment recorded and audited; self-approval and approver roles
answer 403, a second decision 409; the expiry cancels a waiting run; a schedule's fire waits
too; a waiting run can be cancelled."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.approvals.tasks import expire
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.models import Deployment
from shipyard.runtime import build_runtime, close_runtime
from shipyard.schedules.tasks import tick
from tests.builders.deployments import DeployBuilder
from tests.support.api import Account, add_member
from tests.support.git_server import GitFile


class MovableClock:
    """A clock the test sets; monotonic time is the machine's."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return time.monotonic()


async def call(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)


async def make_template(deploy: DeployBuilder, **approval: Any) -> dict[str, Any]:
    repo = await deploy.repo(
        {"job.sh": GitFile("#!/bin/sh\necho approved-run-output\n", executable=True)}
    )
    (host,) = await deploy.hosts(1)
    created = await call(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": "gated-" + uuid.uuid4().hex[:6],
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["job.sh"]}],
            "target": {"host_ids": [host["id"]]},
            "approval": {"required": True, **approval},
        },
    )
    assert created.status_code == 201, created.text
    template: dict[str, Any] = created.json()
    return template


async def launch(deploy: DeployBuilder, template_id: str, account: Account) -> dict[str, Any]:
    response = await call(
        deploy.client, account, "POST", f"/templates/{template_id}/launch", {"parameters": {}}
    )
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def audit_rows(db: Database, deployment_id: str, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.resource_id == UUID(deployment_id),
                AuditEvent.action == action,
                # Refused attempts are audited too (outcome denied or failure).
                AuditEvent.outcome == "success",
            )
        )
        return list(rows)


async def test_template_approval_settings_round_trip_and_limits(
    client: httpx.AsyncClient, admin: Account
) -> None:
    plain = await call(client, admin, "POST", "/templates", {"name": "plain-" + uuid.uuid4().hex})
    assert plain.status_code == 201, plain.text
    assert plain.json()["approval"] == {
        "required": False,
        "approvals_needed": 1,
        "approver_role": "developer",
        "allow_self_approval": False,
        "timeout_minutes": 1440,
    }
    changed = await call(
        client,
        admin,
        "PATCH",
        f"/templates/{plain.json()['id']}",
        {
            "approval": {
                "required": True,
                "approvals_needed": 3,
                "approver_role": "admin",
                "timeout_minutes": 90,
            }
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["approval"]["approvals_needed"] == 3
    assert changed.json()["approval"]["approver_role"] == "admin"
    for bad, field in (
        ({"approvals_needed": 11}, "approval.approvals_needed"),
        ({"approvals_needed": 0}, "approval.approvals_needed"),
        ({"approver_role": "owner"}, "approval.approver_role"),
        ({"timeout_minutes": 0}, "approval.timeout_minutes"),
    ):
        refused = await call(
            client,
            admin,
            "POST",
            "/templates",
            {"name": "bad-" + uuid.uuid4().hex, "approval": {"required": True, **bad}},
        )
        assert refused.status_code == 422, refused.text
        assert field in refused.text, refused.text


async def test_two_approvals_hold_the_run_until_the_second_then_it_succeeds(
    deploy: DeployBuilder, db: Database
) -> None:
    template = await make_template(deploy, approvals_needed=2)
    first = await add_member(deploy.client, deploy.admin, "developer")
    second = await add_member(deploy.client, deploy.admin, "developer")
    deploy.worker.start()
    run = await launch(deploy, template["id"], deploy.admin)
    assert run["status"] == "pending_approval"
    assert run["approvals_needed"] == 2
    assert run["approval_expires_at"] is not None
    run_id = run["id"]

    # Approvers see it in their list; the requester (self-approval off) does not.
    listed = await call(deploy.client, first, "GET", "/approvals")
    assert [item["deployment_id"] for item in listed.json()] == [run_id]
    assert listed.json()[0]["requested_by"]["name"] == deploy.admin.email
    own = await call(deploy.client, deploy.admin, "GET", "/approvals")
    assert own.json() == []
    everything = await call(deploy.client, deploy.admin, "GET", "/approvals?all=true")
    (mine,) = everything.json()
    assert mine["can_decide"] is False
    assert "launched this run" in mine["reason"]

    one = await call(
        deploy.client, first, "POST", f"/deployments/{run_id}/approve", {"comment": "looks fine"}
    )
    assert one.status_code == 200, one.text
    assert one.json()["status"] == "pending_approval"
    # The worker runs, yet nothing starts with one approval of two.
    await asyncio.sleep(2.0)
    waiting = (await deploy.get(run_id)).json()
    assert waiting["status"] == "pending_approval"
    assert waiting["started_at"] is None
    assert await deploy.messages(run_id) == []

    again = await call(deploy.client, first, "POST", f"/deployments/{run_id}/approve", {})
    assert again.status_code == 409, again.text
    self_approval = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{run_id}/approve", {}
    )
    assert self_approval.status_code == 403, self_approval.text
    assert "your own runs" in self_approval.text

    two = await call(
        deploy.client, second, "POST", f"/deployments/{run_id}/approve", {"comment": "ship it"}
    )
    assert two.status_code == 200, two.text
    assert two.json()["status"] in ("pending", "in_progress", "success")
    done = await deploy.wait(run_id)
    assert done["status"] == "success", done
    assert any("approved-run-output" in line for line in await deploy.messages(run_id))
    assert [(a["decided_by"]["email"], a["decision"], a["comment"]) for a in done["approvals"]] == [
        (first.email, "approved", "looks fine"),
        (second.email, "approved", "ship it"),
    ]
    assert {a["decided_by"]["id"] for a in done["approvals"]} == {first.user_id, second.user_id}
    assert len(await audit_rows(db, run_id, "deployment.approve")) == 2
    late = await call(deploy.client, deploy.admin, "POST", f"/deployments/{run_id}/reject", {})
    assert late.status_code in (409, 422), late.text
    late = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{run_id}/reject", {"comment": "no"}
    )
    assert late.status_code == 409, late.text


async def test_a_rejection_cancels_the_run_with_its_comment_audited(
    deploy: DeployBuilder, db: Database
) -> None:
    template = await make_template(deploy, approvals_needed=2)
    reviewer = await add_member(deploy.client, deploy.admin, "developer")
    run = await launch(deploy, template["id"], deploy.admin)
    run_id = run["id"]
    silent = await call(deploy.client, reviewer, "POST", f"/deployments/{run_id}/reject", {})
    assert silent.status_code == 422, silent.text
    assert "comment" in silent.text
    rejected = await call(
        deploy.client,
        reviewer,
        "POST",
        f"/deployments/{run_id}/reject",
        {"comment": "not during the sale"},
    )
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["status"] == "cancelled"
    assert body["error"] == f"rejected by {reviewer.email}: not during the sale"
    assert body["approvals"][0]["decision"] == "rejected"
    assert body["approvals"][0]["comment"] == "not during the sale"
    (entry,) = await audit_rows(db, run_id, "deployment.reject")
    assert entry.details["comment"] == "not during the sale"
    assert str(entry.actor_profile_id) == reviewer.user_id
    after = await call(deploy.client, deploy.admin, "GET", "/approvals?all=true")
    assert after.json() == []
    # Its job left the queue: a worker started now never runs it.
    deploy.worker.start()
    await asyncio.sleep(1.0)
    assert (await deploy.get(run_id)).json()["status"] == "cancelled"
    assert await deploy.messages(run_id) == [
        f"Deployment cancelled before it started: rejected by {reviewer.email}: not during the sale"
    ]
    # A re-run of a run that needed approval needs it again.
    rerun = await call(deploy.client, deploy.admin, "POST", f"/deployments/{run_id}/rerun")
    assert rerun.status_code == 201, rerun.text
    assert rerun.json()["status"] == "pending_approval"
    assert rerun.json()["approvals_needed"] == 2


async def test_self_approval_and_approver_roles(deploy: DeployBuilder) -> None:
    developer = await add_member(deploy.client, deploy.admin, "developer")
    viewer = await add_member(deploy.client, deploy.admin, "viewer")
    own = await make_template(deploy, allow_self_approval=True)
    run = await launch(deploy, own["id"], developer)
    below = await call(deploy.client, viewer, "POST", f"/deployments/{run['id']}/approve", {})
    assert below.status_code == 403, below.text
    assert "developer or higher" in below.text
    mine = await call(deploy.client, developer, "POST", f"/deployments/{run['id']}/approve", {})
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "pending"

    admins = await make_template(deploy, approver_role="admin")
    gated = await launch(deploy, admins["id"], developer)
    refused = await call(
        deploy.client, developer, "POST", f"/deployments/{gated['id']}/approve", {}
    )
    assert refused.status_code == 403, refused.text
    assert (await call(deploy.client, viewer, "GET", "/approvals")).json() == []
    approved = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{gated['id']}/approve", {}
    )
    assert approved.status_code == 200, approved.text

    viewers = await make_template(deploy, approver_role="viewer")
    open_run = await launch(deploy, viewers["id"], developer)
    by_viewer = await call(
        deploy.client, viewer, "POST", f"/deployments/{open_run['id']}/approve", {"comment": "ok"}
    )
    assert by_viewer.status_code == 200, by_viewer.text

    # Another tenant's id is 404; a plain run is not waiting (409).
    stranger = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{uuid.uuid4()}/approve", {}
    )
    assert stranger.status_code == 404, stranger.text
    not_waiting = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{open_run['id']}/approve", {}
    )
    assert not_waiting.status_code == 409, not_waiting.text


async def test_expiry_cancels_a_waiting_run(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    template = await make_template(deploy, timeout_minutes=30)
    run = await launch(deploy, template["id"], deploy.admin)
    expires = datetime.fromisoformat(run["approval_expires_at"])
    clock = MovableClock(expires - timedelta(minutes=1))
    runtime = build_runtime(settings, db=db, clock=clock)
    try:
        assert await expire(runtime) == []
        clock.at = expires + timedelta(seconds=1)
        assert await expire(runtime) == [UUID(run["id"])]
    finally:
        await close_runtime(runtime)
    ended = (await deploy.get(run["id"])).json()
    assert ended["status"] == "cancelled"
    assert ended["error"] == "approval expired after 30 minutes"
    (entry,) = await audit_rows(db, run["id"], "deployment.approval_expire")
    assert entry.actor_profile_id is None
    late = await call(deploy.client, deploy.admin, "POST", f"/deployments/{run['id']}/approve", {})
    assert late.status_code == 409, late.text


async def test_schedule_fired_runs_wait_too_and_a_waiting_run_can_be_cancelled(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    template = await make_template(deploy)
    schedule = await call(
        deploy.client,
        deploy.admin,
        "POST",
        f"/templates/{template['id']}/schedules",
        {"cron": "0 0 1 * *", "timezone": "UTC"},
    )
    assert schedule.status_code == 201, schedule.text
    fire_at = datetime.fromisoformat(schedule.json()["next_fire_at"])
    runtime = build_runtime(settings, db=db, clock=MovableClock(fire_at + timedelta(seconds=1)))
    try:
        result = await tick(runtime)
    finally:
        await close_runtime(runtime)
    (run_id,) = result.launched
    run = (await deploy.get(str(run_id))).json()
    assert run["status"] == "pending_approval"
    assert run["trigger"] == "schedule"
    assert run["created_by"] is None
    listed = (await call(deploy.client, deploy.admin, "GET", "/approvals")).json()
    assert [item["requested_by"]["kind"] for item in listed] == ["schedule"]

    # Cancelling a waiting run takes its job off the queue.
    cancelled = await deploy.cancel(str(run_id))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    async with db.session(system=True) as session:
        stored = await session.get(Deployment, run_id)
        assert stored is not None and stored.status == "cancelled"
    # The admin (nobody launched it, so self-approval does not apply) could have approved it;
    # a second fire of this template, approved by an admin, starts.
    after = await call(deploy.client, deploy.admin, "GET", f"/schedules/{schedule.json()['id']}")
    next_at = datetime.fromisoformat(after.json()["next_fire_at"])
    runtime = build_runtime(settings, db=db, clock=MovableClock(next_at + timedelta(seconds=1)))
    try:
        again = await tick(runtime)
    finally:
        await close_runtime(runtime)
    (second_id,) = again.launched
    approved = await call(
        deploy.client, deploy.admin, "POST", f"/deployments/{second_id}/approve", {}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "pending"
