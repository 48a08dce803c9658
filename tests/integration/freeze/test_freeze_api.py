"""Freeze windows through the API: CRUD and its 422s, which windows are in force, and what a
window does to manual runs and template launches (409 naming it; an admin's audited override;
a developer's refused), to template and group scope, and to a later run that reaches its time
inside a window (cancelled by the worker, the window named)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from tests.builders.deployments import DeployBuilder
from tests.support.api import Account, add_member, error_fields
from tests.support.git_server import GitFile

OK = GitFile("#!/bin/sh\necho frozen-or-not\n")


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)


def fixed(name: str, **extra: Any) -> dict[str, Any]:
    """A fixed window in force from a minute ago for an hour."""
    now = datetime.now(UTC)
    return {
        "name": name,
        "kind": "fixed",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "timezone": "Europe/Berlin",
        **extra,
    }


async def make_window(client: httpx.AsyncClient, admin: Account, body: dict[str, Any]) -> str:
    created = await api(client, admin, "POST", "/freeze-windows", body)
    assert created.status_code == 201, created.text
    window_id: str = created.json()["id"]
    return window_id


async def audit_rows(db: Database, tenant_id: str, action: str) -> list[AuditEvent]:
    async with db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == UUID(tenant_id),
                AuditEvent.action == action,
                AuditEvent.outcome == "success",
            )
        )
        return list(rows)


async def test_crud_validation_and_what_is_in_force(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    template = await api(client, admin, "POST", "/templates", {"name": "frozen-template"})
    assert template.status_code == 201, template.text
    group = await api(client, admin, "POST", "/host-groups", {"name": "prod"})
    assert group.status_code == 201, group.text
    theirs = await api(client, other_admin, "POST", "/templates", {"name": "theirs"})
    weekend = {
        "name": "weekend",
        "kind": "recurring",
        "cron": "0 18 * * 5",
        "duration_minutes": 60 * 62,
        "timezone": "Europe/Berlin",
        "template_ids": [template.json()["id"]],
        "group_ids": [group.json()["id"]],
    }
    bad = [
        ({**weekend, "cron": "61 * * * *"}, "cron"),
        ({**weekend, "cron": None}, "cron"),
        ({**weekend, "duration_minutes": None}, "duration_minutes"),
        ({**weekend, "duration_minutes": 0}, "duration_minutes"),
        ({**weekend, "timezone": "Mars/Olympus"}, "timezone"),
        ({**weekend, "template_ids": [theirs.json()["id"]]}, "template_ids.0"),
        ({**weekend, "group_ids": [str(UUID(int=7))]}, "group_ids.0"),
        ({**weekend, "kind": "sometimes"}, "kind"),
        ({**weekend, "name": ""}, "name"),
        (fixed("f", starts_at=None), "starts_at"),
        (fixed("f", ends_at="2020-01-01T00:00:00+00:00"), "ends_at"),
        (fixed("f", starts_at="2030-01-01T00:00:00"), "starts_at"),
    ]
    for body, field in bad:
        answer = await api(client, admin, "POST", "/freeze-windows", body)
        assert answer.status_code == 422, (field, answer.text)
        assert field in error_fields(answer), (field, answer.text)

    created = await api(client, admin, "POST", "/freeze-windows", weekend)
    assert created.status_code == 201, created.text
    window = created.json()
    assert window["cron_description"] and len(window["next"]) == 3
    assert all(item["starts_at"].endswith(("+01:00", "+02:00")) for item in window["next"])
    again = await api(client, admin, "POST", "/freeze-windows", weekend)
    assert again.status_code == 409

    developer = await add_member(client, admin, "developer")
    viewer = await add_member(client, admin, "viewer")
    denied = await api(client, developer, "POST", "/freeze-windows", {**weekend, "name": "x"})
    assert denied.status_code == 403
    listed = await api(client, viewer, "GET", "/freeze-windows")
    assert listed.status_code == 200 and [w["id"] for w in listed.json()["items"]] == [window["id"]]
    assert (await api(client, other_admin, "GET", "/freeze-windows")).json()["items"] == []
    hidden = await api(client, other_admin, "GET", f"/freeze-windows/{window['id']}")
    assert hidden.status_code == 404

    # A Friday evening in winter is in force; the Monday after it ends (62 hours later) not.
    friday = "2026-12-04T19:00:00%2B01:00"
    active = await api(client, viewer, "GET", f"/freeze-windows/active?active_at={friday}")
    assert active.status_code == 200, active.text
    assert [item["name"] for item in active.json()["active"]] == ["weekend"]
    assert active.json()["active"][0]["ends_at"] == "2026-12-07T08:00:00+01:00"
    monday = "2026-12-07T08:00:00%2B01:00"
    after = await api(client, viewer, "GET", f"/freeze-windows/active?active_at={monday}")
    assert after.json()["active"] == []
    assert after.json()["upcoming"][0]["starts_at"] == "2026-12-11T18:00:00+01:00"
    naive = await api(client, viewer, "GET", "/freeze-windows/active?active_at=2026-12-04T19:00")
    assert naive.status_code == 422 and "active_at" in error_fields(naive)

    changed = await api(
        client,
        admin,
        "PATCH",
        f"/freeze-windows/{window['id']}",
        {"duration_minutes": 30, "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["duration_minutes"] == 30 and changed.json()["enabled"] is False
    wrong = await api(client, admin, "PATCH", f"/freeze-windows/{window['id']}", {"cron": "x"})
    assert wrong.status_code == 422 and "cron" in error_fields(wrong)
    gone = await api(client, admin, "DELETE", f"/freeze-windows/{window['id']}")
    assert gone.status_code == 204
    assert (await api(client, admin, "GET", f"/freeze-windows/{window['id']}")).status_code == 404
    actions = [
        len(await audit_rows(db, admin.tenant_id, action))
        for action in ("freeze_window.create", "freeze_window.update", "freeze_window.delete")
    ]
    assert actions == [1, 1, 1]


async def test_a_window_refuses_manual_runs_and_launches_and_an_admin_overrides_it(
    deploy: DeployBuilder, db: Database
) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo({"ok.sh": OK})
    hosts = await deploy.hosts(1)
    body = deploy.body(repo, hosts, ("ok.sh", []), name="during the freeze")
    template = await api(
        client,
        admin,
        "POST",
        "/templates",
        {
            "name": "release",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["ok.sh"]}],
            "target": {"host_ids": [hosts[0]["id"]]},
        },
    )
    assert template.status_code == 201, template.text
    template_id = template.json()["id"]
    await make_window(client, admin, fixed("Christmas freeze"))

    refused = await api(client, admin, "POST", "/deployments", body)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "frozen"
    assert "Christmas freeze" in error["message"] and "until" in error["message"]
    launched = await api(client, admin, "POST", f"/templates/{template_id}/launch", {})
    assert launched.status_code == 409 and "Christmas freeze" in launched.text
    # A later run whose time falls inside the window is refused at creation too.
    later = {**body, "schedule": "later"}
    later["scheduled_time"] = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    assert (await api(client, admin, "POST", "/deployments", later)).status_code == 409

    developer = await add_member(client, admin, "developer")
    override = {"freeze_override": {"reason": "hotfix for INC-42"}}
    denied = await api(client, developer, "POST", "/deployments", {**body, **override})
    assert denied.status_code == 403, denied.text
    denied_launch = await api(
        client, developer, "POST", f"/templates/{template_id}/launch", override
    )
    assert denied_launch.status_code == 403, denied_launch.text
    blank = await api(
        client, admin, "POST", "/deployments", {**body, "freeze_override": {"reason": " "}}
    )
    assert blank.status_code == 422 and "freeze_override.reason" in error_fields(blank)

    deploy.worker.start()
    created = await api(client, admin, "POST", "/deployments", {**body, **override})
    assert created.status_code == 201, created.text
    done = await deploy.wait(created.json()["id"])
    assert done["status"] == "success", done
    assert done["freeze_override_reason"] == "hotfix for INC-42"
    assert done["freeze_window_id"] is not None
    run = await api(client, admin, "POST", f"/templates/{template_id}/launch", override)
    assert run.status_code == 201, run.text
    assert (await deploy.wait(run.json()["id"]))["status"] == "success"

    entries = await audit_rows(db, admin.tenant_id, "deployment.freeze_override")
    assert sorted(str(entry.resource_id) for entry in entries) == sorted(
        [created.json()["id"], run.json()["id"]]
    )
    assert {entry.details["reason"] for entry in entries} == {"hotfix for INC-42"}
    assert {entry.details["freeze_window"] for entry in entries} == {"Christmas freeze"}
    assert {str(entry.actor_profile_id) for entry in entries} == {admin.user_id}


async def test_scope_by_template_and_by_host_group(deploy: DeployBuilder) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo({"ok.sh": OK})
    grouped, loose = await deploy.hosts(2)
    group = await api(
        client, admin, "POST", "/host-groups", {"name": "payments", "host_ids": [grouped["id"]]}
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]

    async def template(name: str) -> str:
        created = await api(
            client,
            admin,
            "POST",
            "/templates",
            {
                "name": name,
                "repository_id": repo.id,
                "ref": repo.hosted.default_branch,
                "scripts": [{"script_id": repo.scripts["ok.sh"]}],
                "target": {"host_ids": [loose["id"]]},
            },
        )
        assert created.status_code == 201, created.text
        template_id: str = created.json()["id"]
        return template_id

    frozen_template, free_template = await template("frozen"), await template("free")
    await make_window(client, admin, fixed("template freeze", template_ids=[frozen_template]))
    await make_window(client, admin, fixed("payments freeze", group_ids=[group_id]))

    frozen = await api(client, admin, "POST", f"/templates/{frozen_template}/launch", {})
    assert frozen.status_code == 409 and "template freeze" in frozen.text
    free = await api(client, admin, "POST", f"/templates/{free_template}/launch", {})
    assert free.status_code == 201, free.text

    on_group_host = deploy.body(repo, [grouped], ("ok.sh", []))
    member = await api(client, admin, "POST", "/deployments", on_group_host)
    assert member.status_code == 409 and "payments freeze" in member.text
    by_rule = {**deploy.body(repo, [], ("ok.sh", [])), "target": {"group_ids": [group_id]}}
    rule = await api(client, admin, "POST", "/deployments", by_rule)
    assert rule.status_code == 409 and "payments freeze" in rule.text
    outside = await api(
        client, admin, "POST", "/deployments", deploy.body(repo, [loose], ("ok.sh", []))
    )
    assert outside.status_code == 201, outside.text


async def test_a_later_run_that_reaches_a_window_is_cancelled_naming_it(
    deploy: DeployBuilder,
) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo({"ok.sh": OK})
    hosts = await deploy.hosts(1)
    later = deploy.body(repo, hosts, ("ok.sh", []), name="tonight")
    later.update(
        schedule="later", scheduled_time=(datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    )
    created = await api(client, admin, "POST", "/deployments", later)
    assert created.status_code == 201, created.text
    # The window is saved after the run was accepted; the run reaches its time inside it.
    await make_window(client, admin, fixed("late freeze"))
    deploy.worker.start()
    await asyncio.sleep(0)
    done = await deploy.wait(created.json()["id"], timeout=60)
    assert done["status"] == "cancelled", done
    assert "late freeze" in (done["error"] or "")
    messages = await deploy.messages(created.json()["id"])
    assert any("freeze window 'late freeze'" in line for line in messages), messages
    assert done["started_at"] is not None  # claimed, then stopped before any script ran
    scripts = await deploy.scripts(created.json()["id"])
    assert all(script["status"] != "success" for script in scripts)
