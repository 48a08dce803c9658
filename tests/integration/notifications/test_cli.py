"""``shipyard notifications`` against a running server: channels (the Slack URL from stdin,
never in the output), test, rules, deliveries, delete."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.notifications.receivers import http_receiver
from tests.integration.templates.test_cli import shipyard
from tests.support.api import Account
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_notifications_commands(
    base_url: str, client: httpx.AsyncClient, admin: Account
) -> None:
    async with http_receiver() as receiver:
        secret_path = f"/services/T1/B1/{uuid.uuid4().hex}"
        url = receiver.url + secret_path
        code, output = await shipyard(
            base_url,
            admin.token,
            "notifications",
            "channels",
            "create",
            "slack",
            "ops-slack",
            "--url-stdin",
            stdin=(url + "\n").encode(),
        )
        assert code == 0, output
        assert secret_path not in output
        code, output = await shipyard(base_url, admin.token, "notifications", "channels", "list")
        assert code == 0 and "ops-slack" in output and secret_path not in output
        code, output = await shipyard(
            base_url, admin.token, "notifications", "channels", "test", "ops-slack"
        )
        assert code == 0, output
        assert "ok: status 200" in output and secret_path not in output
        assert receiver.requests[0].path == secret_path

        code, output = await shipyard(
            base_url,
            admin.token,
            "notifications",
            "channels",
            "create",
            "webhook",
            "generic",
            "--webhook-url",
            receiver.url + "/hook",
        )
        assert code == 0 and "secret:" in output and "(shown once)" in output

        code, output = await shipyard(
            base_url,
            admin.token,
            "notifications",
            "rules",
            "create",
            "--channel",
            "ops-slack",
            "--event",
            "deployment.failed",
            "--event",
            "deployment.partial",
            "--only-on-change",
        )
        assert code == 0, output
        rule_id = output.split()[1].rstrip(":")
        code, output = await shipyard(base_url, admin.token, "notifications", "rules", "list")
        assert code == 0 and "deployment.failed, deployment.partial" in output
        code, output = await shipyard(
            base_url,
            admin.token,
            "notifications",
            "rules",
            "create",
            "--channel",
            "ops-slack",
            "--event",
            "deployment.exploded",
        )
        assert code == 1 and "events" in output
        code, output = await shipyard(
            base_url, admin.token, "notifications", "deliveries", "ops-slack"
        )
        assert code == 0 and "test" in output and "delivered" in output
        code, output = await shipyard(
            base_url, admin.token, "notifications", "rules", "delete", rule_id
        )
        assert code == 0, output
        code, output = await shipyard(
            base_url, admin.token, "notifications", "channels", "delete", "ops-slack"
        )
        assert code == 0 and "deleted" in output
