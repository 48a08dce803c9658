"""The audit trail through the API: entries with changes, denials, filters, export, retention."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from shipyard.audit import service
from shipyard.db import Database
from tests.support import canary
from tests.support.api import Account, add_member


async def _entries(
    client: httpx.AsyncClient, admin: Account, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", headers=admin.headers, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _host(client: httpx.AsyncClient, admin: Account, name: str = "a") -> str:
    password = canary.remember("first-host-password", "host password")
    created = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": name, "ip": "127.0.0.1", "user": "deploy", "password": password},
    )
    assert created.status_code == 201, created.text
    host_id: str = created.json()["id"]
    return host_id


async def test_host_update_records_changes_with_secrets_masked(
    client: httpx.AsyncClient, admin: Account
) -> None:
    host_id = await _host(client, admin)
    password = canary.remember("second-host-password", "host password")
    updated = await client.patch(
        f"/api/v1/hosts/{host_id}",
        headers={**admin.headers, "User-Agent": "pytest"},
        json={"name": "b", "password": password},
    )
    assert updated.status_code == 200, updated.text

    [entry] = await _entries(client, admin, action="host.update")
    assert entry["outcome"] == "success"
    assert entry["actor"] == {"id": admin.user_id, "email": admin.email}
    assert entry["resource_type"] == "host" and entry["resource_id"] == host_id
    assert entry["changes"]["name"] == {"before": "a", "after": "b"}
    assert entry["changes"]["password"] == {"changed": True}
    assert "updated_at" not in entry["changes"]
    assert entry["ip_address"] == "127.0.0.1"

    [created] = await _entries(client, admin, action="host.create")
    assert created["changes"]["name"] == {"after": "a"}
    assert created["changes"]["password"] == {"changed": True}
    text_of_all = json.dumps(await _entries(client, admin))
    assert "first-host-password" not in text_of_all
    assert "second-host-password" not in text_of_all


async def test_a_viewers_write_is_denied_and_a_bad_write_fails(
    client: httpx.AsyncClient, admin: Account
) -> None:
    viewer = await add_member(client, admin, "viewer")
    refused = await client.post("/api/v1/hosts", headers=viewer.headers, json={"name": "x"})
    assert refused.status_code == 403
    [denied] = await _entries(client, admin, outcome="denied")
    assert denied["action"] == "host.create"
    assert denied["actor"] == {"id": viewer.user_id, "email": viewer.email}
    assert denied["details"]["error_code"] == "forbidden"

    invalid = await client.post("/api/v1/hosts", headers=admin.headers, json={"port": 0})
    assert invalid.status_code == 422
    missing = await client.delete(
        "/api/v1/hosts/00000000-0000-0000-0000-000000000009", headers=admin.headers
    )
    assert missing.status_code == 404
    failures = await _entries(client, admin, outcome="failure")
    assert {(entry["action"], entry["details"]["error_code"]) for entry in failures} == {
        ("host.create", "validation_error"),
        ("host.delete", "host_not_found"),
    }
    deleted = next(entry for entry in failures if entry["action"] == "host.delete")
    assert deleted["resource_id"] == "00000000-0000-0000-0000-000000000009"

    # Reading is for admins: a viewer is refused (and a GET writes no entry).
    assert (await client.get("/api/v1/audit", headers=viewer.headers)).status_code == 403
    # Unauthenticated writes leave nothing.
    assert (await client.post("/api/v1/hosts", json={"name": "x"})).status_code == 401
    assert len(await _entries(client, admin, outcome="denied")) == 1


async def test_filters(client: httpx.AsyncClient, admin: Account) -> None:
    developer = await add_member(client, admin, "developer")
    await _host(client, admin, "one")
    await _host(client, admin, "two")
    every = await _entries(client, admin)
    assert [entry["at"] for entry in every] == sorted(
        (entry["at"] for entry in every), reverse=True
    )
    assert {entry["action"] for entry in await _entries(client, admin, action="host.")} == {
        "host.create"
    }
    assert len(await _entries(client, admin, action="host.create")) == 2
    assert await _entries(client, admin, action="host") == []
    members = await _entries(client, admin, resource_type="profile")
    assert members and all(entry["resource_type"] == "profile" for entry in members)
    mine = await _entries(client, admin, actor_id=admin.user_id)
    assert mine and all(entry["actor"]["id"] == admin.user_id for entry in mine)
    theirs = await _entries(client, admin, actor_id=developer.user_id)
    assert all(entry["actor"]["id"] == developer.user_id for entry in theirs)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await _entries(client, admin, since=future) == []
    assert len(await _entries(client, admin, until=future)) == len(every)
    page = await client.get("/api/v1/audit", headers=admin.headers, params={"limit": 1})
    assert page.json()["next_cursor"]
    second = await client.get(
        "/api/v1/audit",
        headers=admin.headers,
        params={"limit": 1, "cursor": page.json()["next_cursor"]},
    )
    assert second.json()["items"][0]["id"] == every[1]["id"]
    backwards = await client.get(
        "/api/v1/audit",
        headers=admin.headers,
        params={"since": future, "until": "2020-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    assert backwards.json()["error"]["details"]["errors"][0]["field"] == "since"
    entry = await client.get(f"/api/v1/audit/entries/{every[0]['id']}", headers=admin.headers)
    assert entry.status_code == 200 and entry.json() == every[0]


async def test_export_csv_and_json_lines(client: httpx.AsyncClient, admin: Account) -> None:
    await _host(client, admin, "one")
    await _host(client, admin, "two")
    jsonl = await client.get(
        "/api/v1/audit/export", headers=admin.headers, params={"format": "jsonl", "action": "host."}
    )
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in jsonl.headers["content-disposition"]
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["action"] for line in lines] == ["host.create", "host.create"]
    assert lines[0]["at"] <= lines[1]["at"]  # oldest first
    assert lines[0]["changes"]["name"] == {"after": "one"}

    exported = await client.get(
        "/api/v1/audit/export", headers=admin.headers, params={"format": "csv"}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert list(rows[0]) == [
        "id",
        "at",
        "actor_id",
        "actor_email",
        "action",
        "resource_type",
        "resource_id",
        "outcome",
        "ip_address",
        "changes",
        "details",
    ]
    assert [row["action"] for row in rows].count("host.create") == 2
    assert {row["actor_email"] for row in rows if row["action"] == "host.create"} == {admin.email}
    bad = await client.get("/api/v1/audit/export", headers=admin.headers, params={"format": "xml"})
    assert bad.status_code == 422


async def test_retention_deletes_old_entries_and_keeps_recent_ones(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, db: Database
) -> None:
    default = await client.get("/api/v1/audit/settings", headers=admin.headers)
    assert default.json() == {"retention_days": None, "effective_days": 365, "default_days": 365}
    changed = await client.put(
        "/api/v1/audit/settings", headers=admin.headers, json={"retention_days": 30}
    )
    assert changed.status_code == 200 and changed.json()["effective_days"] == 30
    assert (
        await client.put(
            "/api/v1/audit/settings", headers=admin.headers, json={"retention_days": 0}
        )
    ).status_code == 422
    await _host(client, admin, "old")
    await _host(client, admin, "new")
    await _host(client, other_admin, "theirs-old")
    async with db.session(system=True) as session:
        # Backdate: 40 days (past this tenant's 30), and 100 days (within the other's 365).
        await session.execute(
            text(
                "UPDATE audit_events SET created_at = now() - make_interval(days => :days) "
                "WHERE tenant_id = :tenant AND action = 'host.create' "
                "AND details->>'name' IN ('old', 'theirs-old')"
            ),
            [
                {"days": 40, "tenant": admin.tenant_id},
                {"days": 100, "tenant": other_admin.tenant_id},
            ],
        )
    async with db.session(system=True) as session:
        deleted = await service.delete_expired(
            session=session, now=datetime.now(UTC), default_days=365
        )
    assert deleted == 1
    kept = await _entries(client, admin, action="host.create")
    assert [entry["changes"]["name"]["after"] for entry in kept] == ["new"]
    assert len(await _entries(client, other_admin, action="host.create")) == 1


async def test_a_failed_log_in_is_recorded_for_the_account(
    client: httpx.AsyncClient, admin: Account
) -> None:
    wrong = canary.remember("not-the-password-at-all", "wrong password")
    refused = await client.post(
        "/api/v1/auth/login", json={"email": admin.email.upper(), "password": wrong}
    )
    assert refused.status_code == 401
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": wrong}
    )
    assert unknown.status_code == 401
    failures = await _entries(client, admin, action="login", outcome="failure")
    assert len(failures) == 1
    [entry] = failures
    assert entry["actor"] == {"id": admin.user_id, "email": admin.email}
    assert entry["details"]["error_code"] == "login_failed"
    assert wrong not in json.dumps(failures)
