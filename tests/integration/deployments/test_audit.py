"""Every deployment action writes its audit row, through the API and the web pages alike.

The deployments here are scheduled an hour ahead and no worker runs, so no host is contacted.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from shipyard.git.browse import Browser
from shipyard.git.scripts import ScriptFile
from tests.fixtures.deployments import ScriptRepo, ScriptRepoFactory
from tests.integration.deployments.conftest import SCRIPTS
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token

CLIENT_ADDRESS = "127.0.0.1"  # what httpx's ASGI transport reports as the client


async def _hosts(client: httpx.AsyncClient, account: Account, count: int) -> list[str]:
    """Hosts that are never contacted (nothing runs in these tests)."""
    ids = []
    for _ in range(count):
        response = await client.post(
            "/api/v1/hosts",
            headers=account.headers,
            json={
                "name": f"audit-{uuid.uuid4().hex[:8]}",
                "ip": "127.0.0.1",
                "port": 22,
                "user": "deploy",
                "password": "never used",
            },
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def _audit_rows(db: Database, account: Account) -> list[tuple[str, str, str, str | None]]:
    """(action, resource id, actor, client address) of the tenant's deployment audit rows."""
    async with db.session(system=True) as session:
        rows = await session.execute(
            select(
                AuditEvent.action,
                AuditEvent.resource_id,
                AuditEvent.actor_profile_id,
                AuditEvent.ip_address,
            )
            .where(
                AuditEvent.resource_type == "deployment",
                AuditEvent.tenant_id == uuid.UUID(account.tenant_id),
                AuditEvent.outcome == "success",
            )
            .order_by(AuditEvent.created_at)
        )
        return [
            (action, str(resource), str(actor), None if ip is None else str(ip))
            for action, resource, actor, ip in rows.all()
        ]


def _later(minutes: int = 60) -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0)


async def _api_create(
    client: httpx.AsyncClient,
    account: Account,
    repo: ScriptRepo,
    host_ids: list[str],
    name: str,
    **fields: Any,
) -> httpx.Response:
    """POST /api/v1/deployments: check.sh on ``host_ids``, an hour from now."""
    return await client.post(
        "/api/v1/deployments",
        headers=account.headers,
        json={
            "name": name,
            "repository_id": repo.id,
            "scripts": [{"script_id": repo.scripts["check.sh"]}],
            "host_ids": host_ids,
            "schedule": "later",
            "scheduled_time": _later().isoformat(),
            **fields,
        },
    )


async def _wizard_submit(
    http: httpx.AsyncClient, token: str, repo: ScriptRepo, host_ids: list[str], **fields: Any
) -> httpx.Response:
    """The wizard's final POST, scheduled an hour from now unless ``fields`` say otherwise."""
    form = {
        "csrf_token": token,
        "repository_id": repo.id,
        "host_id": host_ids,
        "schedule": "later",
        "scheduled_local": _later().strftime("%Y-%m-%dT%H:%M"),
        "tz_offset": "0",
        **fields,
    }
    return await http.post("/deployments/new", data=form)


async def test_api_actions_are_audited_with_actor_and_address(
    client: httpx.AsyncClient, db: Database, admin: Account, script_repo: ScriptRepoFactory
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    host_ids = await _hosts(client, admin, 1)
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    created = await _api_create(
        client,
        admin,
        repo,
        host_ids,
        "api audited",
        environment=[{"name": "API_TOKEN", "value": secret, "secret": True}],
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["id"]
    base = f"/api/v1/deployments/{deployment_id}"
    renamed = await client.patch(base, headers=admin.headers, json={"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    moved = await client.patch(
        base, headers=admin.headers, json={"scheduled_time": _later(90).isoformat()}
    )
    assert moved.status_code == 200, moved.text
    assert (await client.post(f"{base}/cancel", headers=admin.headers)).status_code == 200
    rerun = await client.post(f"{base}/rerun", headers=admin.headers)
    assert rerun.status_code == 201, rerun.text
    rerun_id = rerun.json()["id"]
    assert (await client.delete(base, headers=admin.headers)).status_code == 204

    rows = await _audit_rows(db, admin)
    assert [(action, resource) for action, resource, _, _ in rows] == [
        ("deployment.create", deployment_id),
        ("deployment.update", deployment_id),  # rename
        ("deployment.update", deployment_id),  # reschedule
        ("deployment.cancel", deployment_id),
        ("deployment.rerun", rerun_id),
        ("deployment.delete", deployment_id),
    ]
    assert {actor for _, _, actor, _ in rows} == {admin.user_id}
    assert {address for *_, address in rows} == {CLIENT_ADDRESS}
    async with db.session(system=True) as session:
        details = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.details)
                .where(AuditEvent.resource_type == "deployment")
                .order_by(AuditEvent.created_at)
            )
        ).all()
    updates = [entry["fields"] for action, entry in details if action == "deployment.update"]
    assert updates == [["name"], ["scheduled_time"]]
    # A secret variable's value never reaches the audit log (the create and the re-run carry it).
    assert secret not in str([entry for _, entry in details])


async def test_web_actions_are_audited_like_the_api(
    client: httpx.AsyncClient, db: Database, admin: Account, script_repo: ScriptRepoFactory
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    host_ids = await _hosts(client, admin, 2)
    async with browser_client(client, admin) as http:
        token = await csrf_token(http)
        submitted = await _wizard_submit(
            http,
            token,
            repo,
            host_ids,
            name="web audited",
            script_id=[repo.scripts["deploy.sh"], repo.scripts["check.sh"]],
            **{f"args_{repo.scripts['deploy.sh']}": "one 'two words'"},
        )
        assert submitted.status_code == 303, submitted.text
        match = re.fullmatch(r"/deployments/([0-9a-f-]{36})", submitted.headers["location"])
        assert match
        deployment_id = match.group(1)
        cancelled = await http.post(
            f"/deployments/{deployment_id}/cancel", data={"csrf_token": token}
        )
        assert cancelled.status_code == 303, cancelled.text
        rerun = await http.post(f"/deployments/{deployment_id}/rerun", data={"csrf_token": token})
        assert rerun.status_code == 303, rerun.text
        rerun_id = rerun.headers["location"].rsplit("/", 1)[1]

    deployment = (
        await client.get(f"/api/v1/deployments/{deployment_id}", headers=admin.headers)
    ).json()
    assert deployment["status"] == "cancelled"
    assert deployment["script_arguments"] == {repo.scripts["deploy.sh"]: ["one", "two words"]}
    rows = await _audit_rows(db, admin)
    assert [(action, resource) for action, resource, _, _ in rows] == [
        ("deployment.create", deployment_id),
        ("deployment.cancel", deployment_id),
        ("deployment.rerun", rerun_id),
    ]
    assert {actor for _, _, actor, _ in rows} == {admin.user_id}
    assert {address for *_, address in rows} == {CLIENT_ADDRESS}


async def test_a_refused_wizard_submit_writes_nothing_and_shows_the_review(
    client: httpx.AsyncClient, db: Database, admin: Account, script_repo: ScriptRepoFactory
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    host_ids = await _hosts(client, admin, 1)
    async with browser_client(client, admin) as http:
        token = await csrf_token(http)
        response = await _wizard_submit(
            http, token, repo, host_ids, name="unknown script", script_id=str(uuid.uuid4())
        )
    assert response.status_code == 422, response.text
    assert "is not in the repository" in response.text
    assert await _audit_rows(db, admin) == []


@pytest.mark.parametrize("front", ["api", "web"])
async def test_creation_reads_the_catalogue_outside_any_transaction(
    client: httpx.AsyncClient,
    db: Database,
    admin: Account,
    script_repo: ScriptRepoFactory,
    monkeypatch: pytest.MonkeyPatch,
    front: str,
) -> None:
    """While the catalogue is read over the network, the request holds no pooled connection."""
    repo = await script_repo(admin, SCRIPTS)
    host_ids = await _hosts(client, admin, 1)
    checked_out: list[int] = []
    read = Browser.script_files

    async def watched(self: Browser, ref: str) -> list[ScriptFile]:
        checked_out.append(db.engine.pool.checkedout())  # type: ignore[attr-defined]
        return await read(self, ref)

    monkeypatch.setattr(Browser, "script_files", watched)
    if front == "api":
        response = await _api_create(client, admin, repo, host_ids, "no held connection")
        assert response.status_code == 201, response.text
    else:
        async with browser_client(client, admin) as http:
            token = await csrf_token(http)
            response = await _wizard_submit(
                http,
                token,
                repo,
                host_ids,
                name="no held connection",
                script_id=repo.scripts["check.sh"],
            )
        assert response.status_code == 303, response.text
    assert checked_out == [0]
