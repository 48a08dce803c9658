"""``shipyard webhooks ...`` with ``-o json``: every command's output parsed (the API's field
names); with --secret-file the secret is in the file and nowhere in the output."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.builders.git import GitSyncBuilder
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard_json
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_webhooks_commands_in_json(
    base_url: str, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    template = await client.post(
        "/api/v1/templates", headers=admin.headers, json={"name": "json-hooks"}
    )
    assert template.status_code == 201, template.text

    async def json_of(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, *args, label="webhooks-json")

    secret_file = tmp_path / "hook.secret"
    code, hook, err = await json_of(
        "webhooks", "create", "json-hooks", "--provider", "generic", "--branch", "main",
        "--secret-file", str(secret_file),
    )  # fmt: skip
    assert code == 0, err
    canary.remember(secret_file.read_text().strip(), "webhook secret")
    assert "secret" not in hook
    assert hook["url"].endswith(f"/api/v1/hooks/{hook['id']}")
    assert hook["webhook"]["id"] == hook["id"] and hook["webhook"]["branches"] == ["main"]
    assert hook["webhook"]["template_id"] == template.json()["id"]

    code, shown, err = await json_of("webhooks", "show", hook["id"])
    assert code == 0 and shown["id"] == hook["id"] and shown["provider"] == "generic", err
    code, listed, err = await json_of("webhooks", "list", "--template", "json-hooks")
    assert code == 0 and [item["id"] for item in listed] == [hook["id"]], err
    code, deliveries, err = await json_of("webhooks", "deliveries", hook["id"])
    assert code == 0 and deliveries == [], err

    rotated_file = tmp_path / "rotated.secret"
    code, rotated, err = await json_of(
        "webhooks", "rotate", hook["id"], "--secret-file", str(rotated_file)
    )
    assert code == 0 and rotated["id"] == hook["id"] and "secret" not in rotated, err
    canary.remember(rotated_file.read_text().strip(), "webhook secret")

    code, deleted, err = await json_of("webhooks", "delete", hook["id"])
    assert code == 0 and deleted["id"] == hook["id"], err
    code, output, err = await json_of("webhooks", "show", hook["id"])
    assert code == 1 and output is None and "HTTP 404" in err, err


async def test_register_and_remove_in_json(
    base_url: str,
    git_sync: GitSyncBuilder,
    client: httpx.AsyncClient,
    admin: Account,
    tmp_path: Path,
) -> None:
    provider = await git_sync.connect("gitea", user="ada", repositories=1)
    await git_sync.synced(provider)
    (upstream,) = provider.upstream
    listed = await client.get(
        f"/api/v1/repositories?provider_id={provider.id}", headers=admin.headers
    )
    template = await client.post(
        "/api/v1/templates",
        headers=admin.headers,
        json={"name": "json-registered", "repository_id": listed.json()["items"][0]["id"]},
    )
    assert template.status_code == 201, template.text

    async def json_of(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, *args, label="webhooks-json")

    secret_file = tmp_path / "hook.secret"
    code, hook, err = await json_of(
        "webhooks", "create", "json-registered", "--provider", "gitea", "--register",
        "--secret-file", str(secret_file),
    )  # fmt: skip
    assert code == 0, err
    canary.remember(secret_file.read_text().strip(), "webhook secret")
    (remote,) = provider.fake.forge.repo_hooks(upstream)
    assert hook["webhook"]["remote_hook_id"] == str(remote["id"]) and "secret" not in hook

    code, removed, err = await json_of("webhooks", "register", hook["id"], "--remove")
    assert code == 0 and removed["remote_hook_id"] is None, err
    assert provider.fake.forge.repo_hooks(upstream) == []
    code, registered, err = await json_of("webhooks", "register", hook["id"])
    assert code == 0 and registered["remote_hook_id"], err
    code, again, err = await json_of("webhooks", "register", hook["id"])
    assert code == 1 and again is None and "HTTP 409" in err, err
