"""``shipyard schedules ...`` with ``-o json``: every command's output parsed (the API's field
names); a schedule by its name, its template by name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.support.api import Account
from tests.support.cli_process import run_shipyard_json
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_schedules_commands_in_json(
    client: httpx.AsyncClient, admin: Account, base_url: str
) -> None:
    template = "json-nightly-" + uuid.uuid4().hex[:6]
    created = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={"name": template, "parameters": [{"name": "version", "required": True}]},
    )
    assert created.status_code == 201, created.text
    schedule_name = "nightly " + uuid.uuid4().hex[:6]

    async def json_of(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, *args, label="schedules-json")

    code, schedule, err = await json_of(
        "schedules", "create", template, "--cron", "0 3 * * *", "--timezone", "Europe/Berlin",
        "--param", "version=1.0", "--name", schedule_name,
    )  # fmt: skip
    assert code == 0, err
    assert schedule["name"] == schedule_name and schedule["template_id"] == created.json()["id"]
    assert schedule["timezone"] == "Europe/Berlin" and schedule["enabled"] is True
    assert schedule["parameters"] == {"version": "1.0"} and schedule["next_fire_at"]

    code, listed, err = await json_of("schedules", "list", "--template", template)
    assert code == 0 and [item["id"] for item in listed] == [schedule["id"]], err
    code, shown, err = await json_of("schedules", "show", schedule_name)
    assert code == 0 and shown["id"] == schedule["id"], err
    code, upcoming, err = await json_of("schedules", "next", schedule_name, "--count", "3")
    assert code == 0, err
    assert upcoming["cron"] == "0 3 * * *" and len(upcoming["times"]) == 3
    assert {"at", "utc"} <= set(upcoming["times"][0])

    code, paused, err = await json_of("schedules", "pause", schedule["id"])
    assert code == 0 and paused["enabled"] is False and paused["next_fire_at"] is None, err
    code, resumed, err = await json_of("schedules", "resume", schedule_name)
    assert code == 0 and resumed["enabled"] is True, err

    code, deleted, err = await json_of("schedules", "delete", schedule_name)
    assert code == 0 and deleted["id"] == schedule["id"], err
    code, output, err = await json_of("schedules", "show", schedule_name)
    assert code == 1 and output is None and f"no schedule named {schedule_name!r}" in err, err
