"""A freeze window skips a schedule's fire and a webhook's delivery, recorded as ``skipped`` with
the window named, where fires and deliveries are listed; a fire outside the window's scope runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import build_runtime, close_runtime
from shipyard.schedules.tasks import tick
from tests.builders.deployments import DeployBuilder
from tests.integration.schedules.test_scheduler import MovableClock, fires, runs_of
from tests.integration.webhooks.deliveries import push_payload, signed
from tests.support import canary
from tests.support.api import Account
from tests.support.git_server import GitFile

OK = GitFile("#!/bin/sh\necho triggered\n")
MONTHLY = "0 0 1 * *"


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> Any:
    response = await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)
    assert response.status_code < 300, (method, path, response.text)
    return response.json()


async def make_template(deploy: DeployBuilder, name: str) -> str:
    repo = await deploy.repo({"ok.sh": OK})
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": name,
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["ok.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    template_id: str = template["id"]
    return template_id


async def test_a_window_skips_a_scheduled_fire_naming_itself(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    frozen = await make_template(deploy, "frozen nightly")
    free = await make_template(deploy, "free nightly")
    schedule = await api(
        deploy.client, deploy.admin, "POST", f"/templates/{frozen}/schedules", {"cron": MONTHLY}
    )
    other = await api(
        deploy.client, deploy.admin, "POST", f"/templates/{free}/schedules", {"cron": MONTHLY}
    )
    fire_time = datetime.fromisoformat(schedule["next_fire_at"])
    # A recurring window, in Berlin, from 00:00 UTC on the first of each month for two hours.
    await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/freeze-windows",
        {
            "name": "month-end close",
            "kind": "recurring",
            "cron": "0 1 1 * *",
            "duration_minutes": 180,
            "timezone": "Europe/Berlin",
            "template_ids": [frozen],
        },
    )
    clock = MovableClock(fire_time + timedelta(seconds=1))
    runtime = build_runtime(settings, db=db, clock=clock)
    try:
        await tick(runtime)
    finally:
        await close_runtime(runtime)
    (skipped,) = await fires(db, schedule["id"])
    assert skipped.verdict == "skipped"
    assert "freeze window 'month-end close'" in (skipped.reason or "")
    assert skipped.deployment_id is None
    assert await runs_of(db, schedule["id"]) == []
    (ran,) = await fires(db, other["id"])
    assert ran.verdict == "ran" and ran.deployment_id is not None
    listed = await api(deploy.client, deploy.admin, "GET", f"/schedules/{schedule['id']}/fires")
    assert [(item["verdict"], item["reason"]) for item in listed["items"]] == [
        ("skipped", skipped.reason)
    ]
    shown = await api(deploy.client, deploy.admin, "GET", f"/schedules/{schedule['id']}")
    assert shown["last_fire"]["verdict"] == "skipped"


async def test_a_window_skips_a_webhook_delivery(deploy: DeployBuilder) -> None:
    repo = await deploy.repo({"ok.sh": OK})
    (host,) = await deploy.hosts(1)
    template = await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": "on push",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["ok.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    hook = await api(
        deploy.client,
        deploy.admin,
        "POST",
        f"/templates/{template['id']}/webhooks",
        {"provider": "github", "branches": [repo.hosted.default_branch]},
    )
    secret = canary.remember(hook["secret"], "webhook secret")
    now = datetime.now().astimezone()
    await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/freeze-windows",
        {
            "name": "release freeze",
            "kind": "fixed",
            "starts_at": (now - timedelta(minutes=5)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
        },
    )
    headers, body = signed(
        "github",
        "hmac",
        secret,
        push_payload(
            "github", ref=f"refs/heads/{repo.hosted.default_branch}", after=repo.hosted.head()
        ),
    )
    answer = await deploy.client.post(f"/api/v1/hooks/{hook['id']}", headers=headers, content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["verdict"] == "skipped"
    assert "freeze window 'release freeze'" in answer.json()["reason"]
    listed = await api(deploy.client, deploy.admin, "GET", f"/webhooks/{hook['id']}/deliveries")
    assert [(item["verdict"], item["deployment_id"]) for item in listed["items"]] == [
        ("skipped", None)
    ]
    assert "release freeze" in listed["items"][0]["reason"]
    runs = await api(deploy.client, deploy.admin, "GET", f"/templates/{template['id']}/runs")
    assert runs["items"] == []
