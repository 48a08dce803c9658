"""``shipyard audit ... -o json``: entries, the export's summary and streams (by name) as the
API's own objects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard_json
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_audit_commands_print_json(
    client: httpx.AsyncClient, admin: Account, base_url: str, tmp_path: Path
) -> None:
    async def shipyard(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, "audit", *args, label="audit-json")

    for name in ("json-one", "json-two"):
        created = await client.post(
            "/api/v1/hosts",
            headers=admin.headers,
            json={
                "name": name,
                "ip": "127.0.0.1",
                "user": "deploy",
                "password": canary.remember("cli-audit-json-password", "host password"),
            },
        )
        assert created.status_code == 201, created.text

    code, page, err = await shipyard(
        "list", "--action", "host.create", "--actor", admin.email.upper(), "--limit", "1"
    )
    assert code == 0, err
    assert [item["action"] for item in page["items"]] == ["host.create"]
    assert page["items"][0]["changes"]["name"] == {"after": "json-two"}
    assert page["items"][0]["actor"] == {"id": admin.user_id, "email": admin.email}
    assert page["next_cursor"]
    code, nothing, err = await shipyard("list", "--actor", "nobody@example.com")
    assert code == 1 and nothing is None
    assert err.strip() == "error: no member named 'nobody@example.com'"
    code, rest, err = await shipyard(
        "list", "--action", "host.create", "--limit", "1", "--cursor", page["next_cursor"]
    )
    assert code == 0, err
    assert rest["items"][0]["changes"]["name"] == {"after": "json-one"}
    entry = rest["items"][0]
    code, shown, err = await shipyard("show", entry["id"])
    assert code == 0 and shown == entry, err

    target = tmp_path / "audit.jsonl"
    code, summary, err = await shipyard("export", "--action", "host.", "--file", str(target))
    assert code == 0, err
    assert summary == {"file": str(target), "format": "jsonl", "lines": 2}
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert [item["changes"]["name"]["after"] for item in exported] == ["json-one", "json-two"]

    code, kept, err = await shipyard("retention", "set", "--days", "90")
    assert code == 0, err
    assert kept["retention_days"] == 90 and kept["effective_days"] == 90
    code, shown, err = await shipyard("retention", "show")
    assert code == 0 and shown == kept, err
    code, kept, err = await shipyard("retention", "set", "--default")
    assert code == 0, err
    assert kept["retention_days"] is None and kept["effective_days"] == kept["default_days"]
    code, nothing, err = await shipyard("retention", "set")
    assert code == 2 and nothing is None and "give --days N or --default" in err

    # A syslog stream: no signing secret to show.
    code, stream, err = await shipyard(
        "streams", "create", "siem", "--host", "127.0.0.1", "--port", "5514"
    )
    assert code == 0, err
    assert stream["name"] == "siem" and stream["type"] == "syslog"
    assert stream["config"]["port"] == 5514 and stream["secret"] is None
    code, streams, err = await shipyard("streams", "list")
    assert code == 0 and [item["id"] for item in streams] == [stream["id"]], err
    code, shown, err = await shipyard("streams", "show", "siem")
    assert code == 0 and shown["id"] == stream["id"] and shown["enabled"] is True, err
    code, disabled, err = await shipyard("streams", "disable", "siem")
    assert code == 0 and disabled["enabled"] is False, err
    code, enabled, err = await shipyard("streams", "enable", stream["id"])
    assert code == 0 and enabled["enabled"] is True, err
    code, deleted, err = await shipyard("streams", "delete", "siem")
    assert code == 0 and deleted == {"id": stream["id"], "deleted": True}, err
    code, nothing, err = await shipyard("streams", "show", "siem")
    assert code == 1 and nothing is None and err.strip() == "error: no audit stream named 'siem'"
