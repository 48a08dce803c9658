"""``shipyard schedules list|create|next|pause|resume|delete`` against a running server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def shipyard(
    base_url: str, token: str, *args: str, stdin: bytes | None = None
) -> tuple[int, str]:
    return await run_shipyard(base_url, token, *args, label="shipyard-schedules", stdin=stdin)


async def test_schedules_commands(client: httpx.AsyncClient, admin: Account, base_url: str) -> None:
    secret = canary.remember("cli-schedule-secret-" + uuid.uuid4().hex, "schedule secret (cli)")
    name = "cli-nightly-" + uuid.uuid4().hex[:6]
    created = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={
            "name": name,
            "parameters": [
                {"name": "version", "type": "string", "required": True},
                {"name": "TOKEN", "type": "secret", "required": True},
            ],
        },
    )
    assert created.status_code == 201, created.text
    token = admin.token

    code, out = await shipyard(
        base_url,
        token,
        "schedules",
        "create",
        name,
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Berlin",
        "--param",
        "version=1.0",
        "--param-stdin",
        "TOKEN",
        "--overlap",
        "skip",
        "--missed",
        "run_once",
        stdin=secret.encode() + b"\n",
    )
    assert code == 0, out
    assert "At 03:00 (Europe/Berlin)" in out
    assert "T03:00:00+01:00" in out or "T03:00:00+02:00" in out
    assert secret not in out
    schedule_id = out.split("schedule", 1)[1].split(":", 1)[0].strip()
    uuid.UUID(schedule_id)

    code, out = await shipyard(base_url, token, "schedules", "list", "--template", name)
    assert code == 0, out
    assert schedule_id in out
    assert "At 03:00" in out

    code, out = await shipyard(base_url, token, "schedules", "next", schedule_id, "--count", "3")
    assert code == 0, out
    assert out.count("UTC)") == 3

    code, out = await shipyard(base_url, token, "schedules", "pause", schedule_id)
    assert code == 0, out
    assert "paused" in out
    code, out = await shipyard(base_url, token, "schedules", "delete", schedule_id)
    assert code == 0, out
    gone = await client.get(f"/api/v1/schedules/{schedule_id}", headers=admin.headers)
    assert gone.status_code == 404
