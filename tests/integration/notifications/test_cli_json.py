"""``shipyard notifications ... -o json``: every command prints the API's own objects, channels
by name; a webhook's signing secret written to ``--secret-file`` is not in the output."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.notifications.receivers import http_receiver
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard_json
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_notifications_commands_print_json(
    base_url: str, admin: Account, tmp_path: Path
) -> None:
    async def shipyard(*args: str, stdin: bytes | None = None) -> tuple[int, Any, str]:
        return await run_shipyard_json(
            base_url, admin.token, "notifications", *args, label="notifications-json", stdin=stdin
        )

    async with http_receiver() as receiver:
        secret_file = tmp_path / "hook.secret"
        code, created, err = await shipyard(
            "channels",
            "create",
            "webhook",
            "bridge",
            "--webhook-url",
            receiver.url + "/hook",
            "--secret-file",
            str(secret_file),
        )
        assert code == 0, err
        secret = canary.remember(secret_file.read_text().strip(), "webhook signing secret")
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert created["name"] == "bridge" and created["type"] == "webhook"
        assert created["config"]["url"] == receiver.url + "/hook"
        assert created["secret"] is None and created["secret_file"] == str(secret_file)
        assert secret not in repr(created)
        channel_id = created["id"]

        code, listed, err = await shipyard("channels", "list")
        assert code == 0, err
        assert [(item["id"], item["name"], item["enabled"]) for item in listed] == [
            (channel_id, "bridge", True)
        ]

        code, shown, err = await shipyard("channels", "show", "bridge")
        assert code == 0 and shown == listed[0], err
        assert shown["config"]["has_secret"] is True and secret not in repr(shown)

        code, updated, err = await shipyard(
            "channels", "update", "bridge", "--name", "relay", "--disable"
        )
        assert code == 0, err
        assert updated["id"] == channel_id and updated["name"] == "relay"
        assert updated["enabled"] is False

        code, tested, err = await shipyard("channels", "test", "relay")
        assert code == 0, err
        assert tested["ok"] is True and tested["status_code"] == 200
        assert isinstance(tested["duration_ms"], int) and tested["delivery_id"]
        assert receiver.requests[-1].path == "/hook"

        code, deliveries, err = await shipyard("deliveries", "relay", "--limit", "5")
        assert code == 0, err
        assert [item["id"] for item in deliveries] == [tested["delivery_id"]]
        assert deliveries[0]["channel_id"] == channel_id and deliveries[0]["event"] == "test"

        code, rule, err = await shipyard(
            "rules",
            "create",
            "--channel",
            "relay",
            "--event",
            "deployment.failed",
            "--name",
            "failures",
        )
        assert code == 0, err
        assert rule["channel_id"] == channel_id and rule["events"] == ["deployment.failed"]
        assert rule["scope"]["type"] == "tenant" and rule["name"] == "failures"

        code, rules, err = await shipyard("rules", "list")
        assert code == 0, err
        assert [item["id"] for item in rules] == [rule["id"]]
        code, shown, err = await shipyard("rules", "show", rule["id"])
        assert code == 0 and shown == rules[0], err

        code, changed, err = await shipyard(
            "rules", "update", rule["id"], "--event", "host.offline", "--only-on-change"
        )
        assert code == 0, err
        assert changed["events"] == ["host.offline"] and changed["only_on_change"] is True

        # An unknown channel name: one error line on stderr, nothing on stdout.
        code, nothing, err = await shipyard("rules", "create", "--channel", "nope", "--event", "x")
        assert code == 1 and nothing is None
        assert err.strip() == "error: no notification channel named 'nope'"

        code, deleted, err = await shipyard("rules", "delete", rule["id"])
        assert code == 0 and deleted == {"id": rule["id"], "deleted": True}, err
        code, deleted, err = await shipyard("channels", "delete", "relay")
        assert code == 0, err
        assert deleted == {"id": channel_id, "name": "relay", "deleted": True}
        code, listed, err = await shipyard("channels", "list")
        assert code == 0 and listed == [], err
