"""``shipyard webhooks`` against a running server: create (secret to a file), deliveries,
rotate, list, delete; the secret never reaches the command's output."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.templates.test_cli import shipyard
from tests.integration.webhooks.deliveries import push_payload, signed
from tests.support import canary
from tests.support.api import Account
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_webhooks_commands(
    base_url: str, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    template = await client.post(
        "/api/v1/templates", headers=admin.headers, json={"name": "cli-hooks"}
    )
    assert template.status_code == 201, template.text
    secret_file = tmp_path / "hook.secret"
    code, output = await shipyard(
        base_url,
        admin.token,
        "webhooks",
        "create",
        "cli-hooks",
        "--provider",
        "generic",
        "--branch",
        "main",
        "--secret-file",
        str(secret_file),
    )
    assert code == 0, output
    secret = canary.remember(secret_file.read_text().strip(), "webhook secret")
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in output
    hook_id = next(line.split()[1] for line in output.splitlines() if line.startswith("id:"))
    assert f"/api/v1/hooks/{hook_id}" in output

    headers, body = signed(
        "generic", "hmac", secret, push_payload("generic", ref="refs/heads/dev", after="c" * 40)
    )
    filtered = await client.post(f"/api/v1/hooks/{hook_id}", headers=headers, content=body)
    assert filtered.json()["verdict"] == "filtered"

    code, output = await shipyard(base_url, admin.token, "webhooks", "deliveries", hook_id)
    assert code == 0, output
    assert "filtered" in output and "dev" in output

    code, output = await shipyard(
        base_url, admin.token, "webhooks", "list", "--template", "cli-hooks"
    )
    assert code == 0 and hook_id in output and "main" in output, output

    rotated_file = tmp_path / "rotated.secret"
    code, output = await shipyard(
        base_url, admin.token, "webhooks", "rotate", hook_id, "--secret-file", str(rotated_file)
    )
    assert code == 0, output
    rotated = canary.remember(rotated_file.read_text().strip(), "webhook secret")
    assert rotated != secret and rotated not in output
    code, output = await shipyard(base_url, admin.token, "webhooks", "delete", hook_id)
    assert code == 0, output
    gone = await client.get(f"/api/v1/webhooks/{hook_id}", headers=admin.headers)
    assert gone.status_code == 404
