"""Disabling and enabling an audit stream from the streams page (a button per stream, POST with
CSRF) and with ``shipyard audit streams disable|enable``: a disabled stream receives nothing,
an enabled one resumes where it stopped; the API reads the state; other tenants get 404."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from shipyard.audit.cli import app
from shipyard.audit.streaming import send_all
from shipyard.config import Settings
from shipyard.db import Database
from shipyard.runtime import Runtime
from tests.integration.notifications.receivers import HttpReceiver, http_receiver
from tests.support import canary
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token
from tests.support.live_server import serve

STREAMS = "/api/v1/audit/streams"


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def shipyard(base_url: str, account: Account, *args: str) -> tuple[int, str]:
    """``shipyard audit ARGS`` in-process, on a thread so this loop keeps serving the API (as
    tests/integration/deployments/test_cli.py's ``cli()``)."""
    env = {"SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": account.token, "COLUMNS": "200"}
    result = await asyncio.wait_for(
        asyncio.to_thread(CliRunner().invoke, app, list(args), env=env), timeout=120
    )
    canary.save_output("shipyard-audit-streams", result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def hosts_received(receiver: HttpReceiver) -> list[str]:
    names = []
    for request in receiver.requests:
        for entry in request.json()["entries"]:
            if entry["action"] == "host.create":
                names.append(entry["changes"]["name"]["after"])
    return names


async def add_host(client: httpx.AsyncClient, admin: Account, name: str) -> None:
    created = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={
            "name": name,
            "ip": "127.0.0.1",
            "user": "deploy",
            "password": canary.remember("toggle-host-password", "host password"),
        },
    )
    assert created.status_code == 201, created.text


async def stream_state(client: httpx.AsyncClient, admin: Account, stream_id: str) -> Any:
    shown = await client.get(f"{STREAMS}/{stream_id}", headers=admin.headers)
    assert shown.status_code == 200, shown.text
    return shown.json()["enabled"]


async def test_disable_stops_delivery_and_enable_resumes(
    client: httpx.AsyncClient,
    admin: Account,
    other_admin: Account,
    runtime: Runtime,
    settings: Settings,
    base_url: str,
) -> None:
    runtime.settings = settings.model_copy(update={"audit_stream_settle_seconds": 0.0})
    async with http_receiver([]) as receiver, browser_client(client, admin) as http:
        created = await client.post(
            STREAMS,
            headers=admin.headers,
            json={"name": "siem", "type": "webhook", "config": {"url": receiver.url + "/audit"}},
        )
        assert created.status_code == 201, created.text
        canary.remember(created.json()["secret"], "audit stream secret")
        stream_id = created.json()["id"]
        await add_host(client, admin, "one")
        await send_all(runtime)
        assert hosts_received(receiver) == ["one"]

        # The page: a Disable button per enabled stream; pressing it goes through the PATCH.
        token = await csrf_token(http, "/audit/settings")
        page = await http.get("/audit/settings")
        assert f'action="/audit/streams/{stream_id}/disable"' in page.text
        disabled = await http.post(
            f"/audit/streams/{stream_id}/disable", data={"csrf_token": token}
        )
        assert disabled.status_code == 303, disabled.text
        assert await stream_state(client, admin, stream_id) is False
        page = await http.get("/audit/settings")
        assert f'action="/audit/streams/{stream_id}/enable"' in page.text
        assert 'badge-muted">disabled' in page.text
        no_csrf = await http.post(f"/audit/streams/{stream_id}/enable", data={})
        assert no_csrf.status_code == 403
        assert await stream_state(client, admin, stream_id) is False

        await add_host(client, admin, "two")
        await send_all(runtime)
        assert hosts_received(receiver) == ["one"]  # nothing while disabled

        # The CLI enables it again: it resumes where it stopped.
        code, output = await shipyard(base_url, admin, "streams", "enable", stream_id)
        assert code == 0, output
        assert f"stream {stream_id} (siem): enabled" in output
        assert await stream_state(client, admin, stream_id) is True
        await send_all(runtime)
        assert hosts_received(receiver) == ["one", "two"]

        code, output = await shipyard(base_url, admin, "streams", "disable", stream_id)
        assert code == 0 and "disabled" in output
        assert await stream_state(client, admin, stream_id) is False
        code, output = await shipyard(base_url, admin, "streams", "list")
        assert code == 0 and "siem" in output and " no " in output

        # The web button enables it too.
        enabled = await http.post(f"/audit/streams/{stream_id}/enable", data={"csrf_token": token})
        assert enabled.status_code == 303
        assert await stream_state(client, admin, stream_id) is True

    # Another tenant: 404 from the page and the command; the stream is untouched.
    async with browser_client(client, other_admin) as other:
        token = await csrf_token(other, "/audit/settings")
        for action in ("disable", "enable"):
            refused = await other.post(
                f"/audit/streams/{stream_id}/{action}", data={"csrf_token": token}
            )
            assert refused.status_code == 404, refused.text
    code, output = await shipyard(base_url, other_admin, "streams", "disable", stream_id)
    assert code == 1 and "HTTP 404" in output
    assert await stream_state(client, admin, stream_id) is True

    audited = await client.get(
        "/api/v1/audit", headers=admin.headers, params={"action": "audit_stream.update"}
    )
    assert len(audited.json()["items"]) == 4
