"""Notifications tests: the session's settings with a short retry base (and per-test overrides
by indirect parametrisation), and helpers to create channels and wait for deliveries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipyard.config import Settings, get_settings
from shipyard.db import Database
from tests.support.api import Account
from tests.support.runtime import run_worker_until_idle

RETRY_BASE = 0.2


@pytest.fixture
def settings(test_settings: Settings, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return get_settings().model_copy(
        update={
            "notification_retry_base_seconds": RETRY_BASE,
            "notification_timeout_seconds": 5.0,
            "base_url": "https://shipyard.example.com",
            **overrides,
        }
    )


@pytest.fixture(autouse=True)
def _quiet_smtp_server_log() -> Iterator[None]:
    """aiosmtpd logs every line it receives at DEBUG (AUTH's base64 too): the test server's
    log, not ours; kept out of the canary's collection."""
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


async def create_channel(
    client: httpx.AsyncClient,
    admin: Account,
    channel_type: str,
    config: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/notification-channels",
        headers=admin.headers,
        json={
            "type": channel_type,
            "name": f"{channel_type}-{len(config)}-{id(config)}",
            "config": config,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_rule(
    client: httpx.AsyncClient, admin: Account, channel_id: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/notification-rules",
        headers=admin.headers,
        json={"channel_id": channel_id, "events": events, **extra},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(
    client: httpx.AsyncClient, admin: Account, channel_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/notification-channels/{channel_id}/deliveries", headers=admin.headers
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def settle(
    client: httpx.AsyncClient,
    admin: Account,
    channel_id: str,
    *,
    settings: Settings,
    db: Database,
    count: int = 1,
    timeout: float = 30.0,
) -> list[dict[str, Any]]:
    """Run workers until the channel has ``count`` deliveries, none pending or retrying."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await run_worker_until_idle(settings, db)
        found = await deliveries(client, admin, channel_id)
        if len(found) >= count and all(d["status"] in ("delivered", "failed") for d in found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries did not settle: {found}")
        await asyncio.sleep(0.1)
