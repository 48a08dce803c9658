"""Events besides deployments: a schedule's missed fires (once per schedule and tick), a host
going offline and a host key change (once per transition, not on every check)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from uuid import UUID

import httpx
import pytest

from shipyard.config import Settings
from shipyard.git.models import GitProvider
from shipyard.git.sync import sync_provider
from shipyard.runtime import Runtime
from shipyard.schedules.scheduler import fire_due
from tests.fixtures.hosts import HostFactory
from tests.integration.notifications.conftest import create_channel, create_rule, deliveries
from tests.support import canary
from tests.support.api import Account
from tests.support.sshd import SSHEndpoint, free_port


async def test_missed_fires_notify_once_per_schedule(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    await create_rule(client, admin, channel["id"], ["schedule.missed"])
    template = await client.post(
        "/api/v1/templates", headers=admin.headers, json={"name": "t-" + uuid.uuid4().hex[:6]}
    )
    assert template.status_code == 201, template.text
    schedule = await client.post(
        f"/api/v1/templates/{template.json()['id']}/schedules",
        headers=admin.headers,
        json={"cron": "*/5 * * * *", "timezone": "UTC", "missed_policy": "skip"},
    )
    assert schedule.status_code == 201, schedule.text
    first = datetime.fromisoformat(schedule.json()["next_fire_at"])
    async with runtime.db.session(system=True) as session:
        await fire_due(session, now=first + timedelta(minutes=16), settings=settings)
    (delivery,) = await deliveries(client, admin, channel["id"])
    assert delivery["event"] == "schedule.missed"
    assert delivery["subject_id"] == schedule.json()["id"]
    assert delivery["title"].startswith("Schedule ")


async def test_host_offline_and_key_change_notify_once_per_transition(
    client: httpx.AsyncClient,
    admin: Account,
    ssh_endpoint: SSHEndpoint,
    host_factory: HostFactory,
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    await create_rule(client, admin, channel["id"], ["host.offline", "host.key_changed"])
    down = await host_factory(admin, ssh_endpoint, port=free_port())
    changed = await host_factory(admin, ssh_endpoint, host_key_fingerprint="SHA256:" + "D" * 43)
    for host in (down, changed, down, changed):
        response = await client.post(f"/api/v1/hosts/{host['id']}/test", headers=admin.headers)
        assert response.status_code == 200, response.text
    found = await deliveries(client, admin, channel["id"])
    assert sorted((d["event"], d["subject_id"]) for d in found) == sorted(
        [("host.offline", down["id"]), ("host.key_changed", changed["id"])]
    )


@pytest.mark.parametrize("settings", [{"http_retry_seconds": 0.0}], indirect=True)
async def test_provider_sync_failure_notifies(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    await create_rule(client, admin, channel["id"], ["provider.sync_failed"])
    tenant_id, profile_id = UUID(admin.tenant_id), UUID(admin.user_id)
    async with runtime.db.session(tenant_id=tenant_id, user_id=profile_id) as session:
        tokenless = GitProvider(
            tenant_id=tenant_id, profile_id=profile_id, type="github", name="no-token"
        )
        unreachable = GitProvider(
            tenant_id=tenant_id,
            profile_id=profile_id,
            type="gitea",
            name="gone",
            server_url=f"http://127.0.0.1:{free_port()}",
            access_token=canary.remember("gitea-token-" + uuid.uuid4().hex, "git token"),
            is_configured=True,
        )
        session.add_all([tokenless, unreachable])
        await session.flush()
        ids = (tokenless.id, unreachable.id)
    # Twice each: a failure after a failure is not news (once per transition).
    for provider_id in (*ids, *ids):
        result = await sync_provider(
            db=runtime.db,
            settings=settings,
            tenant_id=tenant_id,
            provider_id=provider_id,
            http=runtime.http,
        )
        assert result.status == "error", result
    found = await deliveries(client, admin, channel["id"])
    assert sorted(d["subject_id"] for d in found) == sorted(str(i) for i in ids)
    assert {d["event"] for d in found} == {"provider.sync_failed"}
    assert {d["title"] for d in found} == {"Git provider no-token", "Git provider gone"}
