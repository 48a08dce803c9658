"""``shipyard audit list|export|streams`` against a running server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

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


async def shipyard(base_url: str, token: str, *args: str, keep: bool = True) -> tuple[int, str]:
    """Run the CLI; ``keep=False`` for the one output that shows a secret once, by design."""
    return await run_shipyard(base_url, token, *args, label="shipyard-audit", keep=keep)


async def test_audit_commands(
    client: httpx.AsyncClient, admin: Account, base_url: str, tmp_path: Path
) -> None:
    password = canary.remember("cli-audit-host-password", "host password")
    created = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": "cli-host", "ip": "127.0.0.1", "user": "deploy", "password": password},
    )
    assert created.status_code == 201, created.text

    code, output = await shipyard(base_url, admin.token, "audit", "list", "--action", "host.")
    assert code == 0, output
    assert "host.create" in output and "password" in output and "member.add" not in output

    target = tmp_path / "audit.csv"
    code, output = await shipyard(
        base_url, admin.token, "audit", "export", "--format", "csv", "--file", str(target)
    )
    assert code == 0, output
    lines = target.read_text().splitlines()
    assert lines[0].startswith("id,at,actor_id,actor_email,action")
    assert any(",host.create," in line for line in lines)
    code, output = await shipyard(base_url, admin.token, "audit", "export", "--action", "host.")
    assert code == 0, output
    assert [json.loads(line)["action"] for line in output.splitlines()] == ["host.create"]

    code, output = await shipyard(
        base_url,
        admin.token,
        "audit",
        "streams",
        "create",
        "siem",
        "--webhook-url",
        "http://127.0.0.1:9/x",
        keep=False,
    )
    assert code == 0, output
    secret = json.loads(output.splitlines()[-1])["secret"]
    canary.remember(secret, "audit stream secret (cli)")
    code, output = await shipyard(base_url, admin.token, "audit", "streams", "list")
    assert code == 0 and "siem" in output and secret not in output, output
    stream_id = (await client.get("/api/v1/audit/streams", headers=admin.headers)).json()[0]["id"]
    code, output = await shipyard(base_url, admin.token, "audit", "streams", "delete", stream_id)
    assert code == 0, output
    assert (await client.get("/api/v1/audit/streams", headers=admin.headers)).json() == []
