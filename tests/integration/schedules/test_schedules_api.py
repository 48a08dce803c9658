"""The schedules API: create with validation naming the field, next fire times in the zone and
UTC, list with the cron line in words, pause/resume, secret values write-only, roles, audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.runtime import Runtime
from tests.support import canary
from tests.support.api import Account, add_member, error_fields


async def make_template(client: httpx.AsyncClient, admin: Account, **extra: Any) -> str:
    created = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={
            "name": "nightly-" + uuid.uuid4().hex[:6],
            "parameters": [
                {"name": "version", "type": "string", "required": True, "pattern": r"[0-9.]+"},
                {"name": "TOKEN", "type": "secret"},
                {"name": "level", "type": "choice", "choices": ["a", "b"], "default": "a"},
            ],
            **extra,
        },
    )
    assert created.status_code == 201, created.text
    template_id: str = created.json()["id"]
    return template_id


async def test_create_preview_list_pause_resume_and_delete(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime
) -> None:
    secret = canary.remember("schedule-secret-" + uuid.uuid4().hex, "schedule secret parameter")
    template_id = await make_template(client, admin)
    url = f"/api/v1/templates/{template_id}/schedules"
    created = await client.post(
        url,
        headers=admin.headers,
        json={
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "parameters": {"version": "1.2", "TOKEN": secret},
            "overlap_policy": "queue",
            "missed_policy": "run_once",
        },
    )
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert secret not in created.text
    assert schedule["parameters"] == {"version": "1.2", "TOKEN": "***"}
    assert schedule["cron_description"] == "At 02:30"
    assert schedule["enabled"] is True
    assert schedule["overlap_policy"] == "queue"
    assert schedule["missed_policy"] == "run_once"
    next_at = datetime.fromisoformat(schedule["next_fire_at"])
    assert timedelta(0) < next_at - datetime.now(UTC) <= timedelta(days=1, hours=1)
    assert schedule["next_fire_local"].endswith(("+01:00", "+02:00"))
    schedule_id = schedule["id"]

    upcoming = await client.get(
        f"/api/v1/schedules/{schedule_id}/next", headers=admin.headers, params={"count": 10}
    )
    assert upcoming.status_code == 200, upcoming.text
    times = upcoming.json()["times"]
    assert len(times) == 10
    for item in times:
        local = datetime.fromisoformat(item["at"])
        assert local.strftime("%H:%M") == "02:30"
        assert local == datetime.fromisoformat(item["utc"])
        assert item["utc"].endswith("Z")

    preview = await client.post(
        "/api/v1/schedules/preview",
        headers=admin.headers,
        json={"cron": "@daily", "timezone": "America/New_York", "count": 3},
    )
    assert preview.status_code == 200, preview.text
    first = preview.json()["times"][0]["at"]
    assert first[11:].startswith("00:00:00-0"), first

    listed = await client.get(
        "/api/v1/schedules", headers=admin.headers, params={"template_id": template_id}
    )
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [schedule_id]
    other_template = await make_template(client, admin)
    none = await client.get(
        "/api/v1/schedules", headers=admin.headers, params={"template_id": other_template}
    )
    assert none.json()["items"] == []

    paused = await client.post(f"/api/v1/schedules/{schedule_id}/pause", headers=admin.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["enabled"] is False
    assert paused.json()["next_fire_at"] is None
    resumed = await client.post(f"/api/v1/schedules/{schedule_id}/resume", headers=admin.headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["enabled"] is True
    assert resumed.json()["next_fire_at"] == schedule["next_fire_at"]

    # A secret sent back as *** keeps its value; a new plain value is checked.
    patched = await client.patch(
        f"/api/v1/schedules/{schedule_id}",
        headers=admin.headers,
        json={"parameters": {"version": "2.0", "TOKEN": "***"}, "cron": "@hourly"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["parameters"] == {"version": "2.0", "TOKEN": "***"}
    assert patched.json()["cron_description"] == "Every hour"
    got = await client.get(f"/api/v1/schedules/{schedule_id}", headers=admin.headers)
    assert got.status_code == 200
    assert secret not in got.text

    fires = await client.get(f"/api/v1/schedules/{schedule_id}/fires", headers=admin.headers)
    assert fires.status_code == 200, fires.text
    assert fires.json()["items"] == []

    async with runtime.db.session(system=True) as session:
        rows = await session.scalars(
            select(AuditEvent).where(AuditEvent.resource_id == uuid.UUID(schedule_id))
        )
        entries = [(row.action, row.details) for row in rows]
    assert {"schedule.create", "schedule.pause", "schedule.resume", "schedule.update"} <= {
        action for action, _ in entries
    }
    assert secret not in repr(entries)

    deleted = await client.delete(f"/api/v1/schedules/{schedule_id}", headers=admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(f"/api/v1/schedules/{schedule_id}", headers=admin.headers)
    assert gone.status_code == 404


async def test_validation_names_the_field(client: httpx.AsyncClient, admin: Account) -> None:
    template_id = await make_template(client, admin)
    url = f"/api/v1/templates/{template_id}/schedules"
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    ok = {"version": "1"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron": "0 3 * *"}, "cron"),
        ({"cron": "0 3 * * * *"}, "cron"),
        ({"cron": "99 3 * * *"}, "cron"),
        ({"cron": "@sometimes"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Atlantis"}, "timezone"),
        ({"cron": "0 3 * * *", "ends_at": past}, "ends_at"),
        ({"cron": "0 3 * * *", "starts_at": future, "ends_at": future}, "ends_at"),
        ({"cron": "0 3 * * *", "ends_at": "2030-01-01T00:00:00"}, "ends_at"),
        ({"cron": "0 3 * * *", "overlap_policy": "sometimes"}, "overlap_policy"),
        ({"cron": "0 3 * * *", "missed_policy": "all"}, "missed_policy"),
        ({"cron": "0 3 * * *", "parameters": {}}, "parameters.version"),
        ({"cron": "0 3 * * *", "parameters": {"version": "x y"}}, "parameters.version"),
        ({"cron": "0 3 * * *", "parameters": {"version": "1", "nope": 1}}, "parameters.nope"),
        ({"cron": "0 3 * * *", "parameters": {"version": "1", "level": "c"}}, "parameters.level"),
    ]
    for body, field in cases:
        body.setdefault("parameters", ok)
        response = await client.post(url, headers=admin.headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert error_fields(response)[0].endswith(field), (body, response.text)
    missing = await client.post(
        f"/api/v1/templates/{uuid.uuid4()}/schedules",
        headers=admin.headers,
        json={"cron": "0 3 * * *"},
    )
    assert missing.status_code == 404


async def test_roles_and_isolation(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    template_id = await make_template(client, admin)
    created = await client.post(
        f"/api/v1/templates/{template_id}/schedules",
        headers=admin.headers,
        json={"cron": "0 3 * * *", "parameters": {"version": "1"}},
    )
    assert created.status_code == 201, created.text
    schedule_id = created.json()["id"]
    viewer = await add_member(client, admin, "viewer")
    seen = await client.get(f"/api/v1/schedules/{schedule_id}", headers=viewer.headers)
    assert seen.status_code == 200
    for method, path in (
        ("POST", f"/api/v1/schedules/{schedule_id}/pause"),
        ("POST", f"/api/v1/schedules/{schedule_id}/resume"),
        ("DELETE", f"/api/v1/schedules/{schedule_id}"),
        ("PATCH", f"/api/v1/schedules/{schedule_id}"),
    ):
        refused = await client.request(
            method, path, headers=viewer.headers, json={} if method == "PATCH" else None
        )
        assert refused.status_code == 403, (method, path, refused.text)
    stranger = await client.get(f"/api/v1/schedules/{schedule_id}", headers=other_admin.headers)
    assert stranger.status_code == 404
    theirs = await client.get("/api/v1/schedules", headers=other_admin.headers)
    assert theirs.json()["items"] == []
    # Deleting the template deletes its schedules.
    await client.delete(f"/api/v1/templates/{template_id}", headers=admin.headers)
    gone = await client.get(f"/api/v1/schedules/{schedule_id}", headers=admin.headers)
    assert gone.status_code == 404
