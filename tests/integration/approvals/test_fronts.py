"""Approvals through the CLI (``shipyard approvals list|approve|reject`` against a running
server) and the web (the template form's Approvals fieldset, /approvals with its forms, a
deployment's approval panel, approve from the web page)."""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.builders.deployments import DeployBuilder
from tests.integration.approvals.test_approvals import call, launch, make_template
from tests.support.api import add_member
from tests.support.browser_http import browser_client, csrf_token
from tests.support.cli_process import run_shipyard
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def shipyard(base_url: str, token: str, *args: str) -> tuple[int, str]:
    return await run_shipyard(base_url, token, *args, label="shipyard-approvals")


async def test_approvals_commands(deploy: DeployBuilder, base_url: str) -> None:
    template = await make_template(deploy, approvals_needed=2)
    reviewer = await add_member(deploy.client, deploy.admin, "developer")
    other = await add_member(deploy.client, deploy.admin, "developer")
    kept = await launch(deploy, template["id"], deploy.admin)
    dropped = await launch(deploy, template["id"], deploy.admin)

    code, output = await shipyard(base_url, reviewer.token, "approvals", "list")
    assert code == 0, output
    assert kept["id"] in output and dropped["id"] in output
    assert "0/2" in output
    code, output = await shipyard(base_url, deploy.admin.token, "approvals", "list")
    assert code == 0, output
    assert "nothing waits for your approval" in output
    code, output = await shipyard(base_url, deploy.admin.token, "approvals", "list", "--all")
    assert code == 0, output
    assert "launched this run" in output

    code, output = await shipyard(
        base_url, reviewer.token, "approvals", "approve", kept["id"], "--comment", "fine by me"
    )
    assert code == 0, output
    assert "approved (1/2 approvals, now pending_approval)" in output
    code, output = await shipyard(base_url, reviewer.token, "approvals", "approve", kept["id"])
    assert code == 1
    assert "already decided" in output
    code, output = await shipyard(base_url, other.token, "approvals", "approve", kept["id"])
    assert code == 0, output
    assert "now pending" in output

    code, output = await shipyard(
        base_url, reviewer.token, "approvals", "reject", dropped["id"], "--comment", "wrong week"
    )
    assert code == 0, output
    assert "rejected" in output and "cancelled" in output
    state = (await deploy.get(dropped["id"])).json()
    assert state["error"] == f"rejected by {reviewer.email}: wrong week"
    code, output = await shipyard(base_url, reviewer.token, "approvals", "reject", kept["id"])
    assert code != 0  # --comment is required by the command itself


def text_of(body: str) -> str:
    return html.unescape(body)


async def test_template_form_and_approving_from_the_web(deploy: DeployBuilder) -> None:
    client, admin = deploy.client, deploy.admin
    developer = await add_member(client, admin, "developer")
    viewer = await add_member(client, admin, "viewer")
    template = await make_template(deploy, approvals_needed=2)

    async with browser_client(client, admin) as http:
        # The template form shows the stored settings in its Approvals fieldset, and saves them.
        edit = await http.get(f"/templates/{template['id']}/edit")
        assert edit.status_code == 200, edit.text
        assert "<legend>Approvals</legend>" in edit.text
        assert 'name="approval.required" value="1" checked' in edit.text
        assert 'name="approval.approvals_needed" type="number" value="2"' in edit.text
        token = await csrf_token(http, "/templates/new")
        created = await http.post(
            "/templates/new",
            data={
                "csrf_token": token,
                "action": "save",
                "name": "web-gated-" + uuid.uuid4().hex[:6],
                "approval.required": "1",
                "approval.approvals_needed": "3",
                "approval.approver_role": "admin",
                "approval.timeout_minutes": "60",
                "approval.allow_self_approval": "1",
            },
        )
        assert created.status_code == 303, created.text
        saved = await call(
            client, admin, "GET", f"/templates/{created.headers['location'].rsplit('/', 1)[1]}"
        )
        assert saved.json()["approval"] == {
            "required": True,
            "approvals_needed": 3,
            "approver_role": "admin",
            "allow_self_approval": True,
            "timeout_minutes": 60,
        }
        bad = await http.post(
            "/templates/new",
            data={
                "csrf_token": token,
                "action": "save",
                "name": "web-bad-" + uuid.uuid4().hex[:6],
                "approval.required": "1",
                "approval.approvals_needed": "11",
            },
        )
        assert bad.status_code == 422, bad.text
        assert 'aria-describedby="e-approval.approvals_needed"' in bad.text

    run = await launch(deploy, template["id"], admin)
    run_id = run["id"]
    page_of_run = f"/deployments/{run_id}"
    async with browser_client(client, developer) as http:
        listed = await http.get("/approvals")
        assert listed.status_code == 200, listed.text
        assert f'data-deployment="{run_id}"' in listed.text
        assert f'action="/approvals/{run_id}/approve"' in listed.text
        page = await http.get(page_of_run)
        assert f'hx-get="/deployments/{run_id}/approval"' in page.text
        panel = await http.get(f"/deployments/{run_id}/approval")
        assert panel.status_code == 200, panel.text
        assert "Waiting for approval: 0 of 2" in panel.text
        token = await csrf_token(http, "/approvals")
        silent = await http.post(
            f"/approvals/{run_id}/reject", data={"csrf_token": token, "next": page_of_run}
        )
        assert silent.status_code == 422, silent.text
        approved = await http.post(
            f"/approvals/{run_id}/approve",
            data={"csrf_token": token, "comment": "good <to> go", "next": page_of_run},
        )
        assert approved.status_code == 303, approved.text
        assert approved.headers["location"] == page_of_run
        panel = await http.get(f"/deployments/{run_id}/approval")
        shown = text_of(panel.text)
        assert "Waiting for approval: 1 of 2" in shown
        assert f"by {developer.email}" in shown and "good <to> go" in shown
        assert "&lt;to&gt;" in panel.text  # escaped
        assert f'action="/approvals/{run_id}/approve"' not in panel.text
        assert "already decided" in panel.text

    async with browser_client(client, viewer) as http:
        listed = await http.get("/approvals")
        assert "needs the role developer or higher" in listed.text
        token = await csrf_token(http, "/approvals")
        refused = await http.post(f"/approvals/{run_id}/approve", data={"csrf_token": token})
        assert refused.status_code == 403, refused.text

    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/approvals")
        own_page = text_of((await http.get("/approvals")).text)
        assert "launched this run" in own_page
        other = await add_member(client, admin, "admin")
    async with browser_client(client, other) as http:
        token = await csrf_token(http, "/approvals")
        done = await http.post(
            f"/approvals/{run_id}/approve", data={"csrf_token": token, "next": "/approvals"}
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/approvals"
        panel = await http.get(f"/deployments/{run_id}/approval")
        assert 'data-approval-status="pending"' in panel.text
        assert "2 given" in panel.text
    state: dict[str, Any] = (await deploy.get(run_id)).json()
    assert state["status"] == "pending"
    assert len(state["approvals"]) == 2
