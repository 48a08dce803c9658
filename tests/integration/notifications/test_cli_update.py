"""``shipyard notifications channels update`` and ``rules update`` against a running server: what
they change is what the API then reads; a secret is replaced only from stdin (never echoed),
kept otherwise, cleared where the type allows it; wrong options fail with a message."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.notifications.cli import app
from tests.integration.notifications.conftest import create_channel, create_rule
from tests.integration.notifications.receivers import http_receiver
from tests.support import canary
from tests.support.api import Account
from tests.support.live_server import serve

CHANNELS = "/api/v1/notification-channels"
RULES = "/api/v1/notification-rules"


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def shipyard(
    base_url: str, admin: Account, *args: str, stdin: bytes | None = None
) -> tuple[int, str]:
    """``shipyard notifications ARGS`` in-process, on a thread so this loop keeps serving the
    API (as tests/integration/deployments/test_cli.py's ``cli()``)."""
    env = {"SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": admin.token, "COLUMNS": "200"}
    result = await asyncio.wait_for(
        asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin or b"", env=env),
        timeout=120,
    )
    canary.save_output("shipyard-notifications-update", result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


async def read(client: httpx.AsyncClient, admin: Account, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_channels_update(base_url: str, client: httpx.AsyncClient, admin: Account) -> None:
    first = canary.remember("cli-first-" + uuid.uuid4().hex, "webhook secret")
    second = canary.remember("cli-second-" + uuid.uuid4().hex, "webhook secret")
    ntfy_token = canary.remember("tk_cli_" + uuid.uuid4().hex, "ntfy token")
    async with http_receiver() as receiver:
        hook = await create_channel(
            client, admin, "webhook", {"url": receiver.url + "/one", "secret": first}
        )
        code, output = await shipyard(
            base_url,
            admin,
            "channels",
            "update",
            hook["name"],
            "--name",
            "cli-hook",
            "--webhook-url",
            receiver.url + "/two",
            "--disable",
        )
        assert code == 0, output
        assert "cli-hook: updated (disabled)" in output
        stored = await read(client, admin, f"{CHANNELS}/{hook['id']}")
        assert stored["name"] == "cli-hook" and stored["enabled"] is False
        assert stored["config"] == {**stored["config"], "url": receiver.url + "/two"}
        assert stored["config"]["has_secret"] is True

        code, output = await shipyard(
            base_url,
            admin,
            "channels",
            "update",
            "cli-hook",
            "--enable",
            "--secret-stdin",
            stdin=(second + "\n").encode(),
        )
        assert code == 0, output
        assert second not in output and "(enabled)" in output
        tested = await client.post(f"{CHANNELS}/{hook['id']}/test", headers=admin.headers)
        assert tested.json()["ok"] is True, tested.text
        sent = receiver.requests[-1]
        assert sent.path == "/two"
        expected = "sha256=" + hmac.new(second.encode(), sent.body, hashlib.sha256).hexdigest()
        assert sent.headers["x-shipyard-signature"] == expected

        # A webhook's secret can be replaced, not removed; options of another type are refused.
        code, output = await shipyard(
            base_url, admin, "channels", "update", "cli-hook", "--clear-secret"
        )
        assert code == 2 and "needs its secret" in output
        code, output = await shipyard(
            base_url, admin, "channels", "update", "cli-hook", "--port", "25"
        )
        assert code == 2 and "--port does not apply to a webhook channel" in output
        code, output = await shipyard(base_url, admin, "channels", "update", "cli-hook")
        assert code == 2 and "nothing to change" in output
        code, output = await shipyard(
            base_url, admin, "channels", "update", "no-such", "--name", "x"
        )
        assert code == 1 and "no notification channel named 'no-such'" in output

        ntfy = await create_channel(
            client, admin, "ntfy", {"server": receiver.url, "topic": "a", "token": ntfy_token}
        )
        code, output = await shipyard(
            base_url,
            admin,
            "channels",
            "update",
            ntfy["id"],
            "--topic",
            "releases",
            "--priority",
            "5",
        )
        assert code == 0, output
        stored = await read(client, admin, f"{CHANNELS}/{ntfy['id']}")
        assert stored["config"]["topic"] == "releases" and stored["config"]["priority"] == 5
        assert stored["config"]["has_token"] is True
        code, output = await shipyard(
            base_url, admin, "channels", "update", ntfy["id"], "--priority", "9"
        )
        assert code == 1 and "less than or equal to 5 (HTTP 422)" in output
        code, output = await shipyard(
            base_url, admin, "channels", "update", ntfy["id"], "--clear-secret"
        )
        assert code == 0, output
        stored = await read(client, admin, f"{CHANNELS}/{ntfy['id']}")
        assert stored["config"]["has_token"] is False

        # A Slack URL is the credential: never an argument.
        slack = await create_channel(client, admin, "slack", {"url": receiver.url + "/s/1"})
        code, output = await shipyard(
            base_url,
            admin,
            "channels",
            "update",
            slack["id"],
            "--webhook-url",
            receiver.url + "/s/2",
        )
        assert code == 2 and "--secret-stdin" in output
        code, output = await shipyard(
            base_url,
            admin,
            "channels",
            "update",
            slack["id"],
            "--secret-stdin",
            stdin=(receiver.url + "/s/3\n").encode(),
        )
        assert code == 0, output
        await client.post(f"{CHANNELS}/{slack['id']}/test", headers=admin.headers)
        assert receiver.requests[-1].path == "/s/3"


async def test_rules_update(base_url: str, client: httpx.AsyncClient, admin: Account) -> None:
    first = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/a"})
    second = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/b"})
    rule = await create_rule(client, admin, first["id"], ["deployment.failed"])
    code, output = await shipyard(
        base_url,
        admin,
        "rules",
        "update",
        rule["id"],
        "--channel",
        second["name"],
        "--event",
        "host.offline",
        "--event",
        "host.key_changed",
        "--only-on-change",
        "--disable",
        "--name",
        "hosts",
    )
    assert code == 0, output
    assert "host.offline, host.key_changed (disabled)" in output
    stored = await read(client, admin, f"{RULES}/{rule['id']}")
    assert stored["channel_id"] == second["id"] and stored["name"] == "hosts"
    assert stored["events"] == ["host.offline", "host.key_changed"]
    assert stored["only_on_change"] is True and stored["enabled"] is False

    code, output = await shipyard(base_url, admin, "rules", "update", rule["id"], "--enable")
    assert code == 0, output
    stored = await read(client, admin, f"{RULES}/{rule['id']}")
    assert stored["enabled"] is True and stored["events"] == ["host.offline", "host.key_changed"]

    code, output = await shipyard(
        base_url, admin, "rules", "update", rule["id"], "--template", str(uuid.uuid4())
    )
    assert code == 1 and "no such template in this tenant (HTTP 422)" in output
    code, output = await shipyard(
        base_url, admin, "rules", "update", rule["id"], "--event", "host.exploded"
    )
    assert code == 1 and "events" in output
    code, output = await shipyard(base_url, admin, "rules", "update", str(uuid.uuid4()), "--enable")
    assert code == 1 and "not found" in output
