"""Notification rules: validation naming the field, scope matching (tenant, template,
repository), "only on change", failed versus partial, and delivery through the job queue with
retries (a receiver failing twice, then answering: one delivery, three attempts)."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.notifications.events import Event, FailedHost, emit
from shipyard.runtime import Runtime
from tests.integration.notifications.conftest import (
    create_channel,
    create_rule,
    deliveries,
    settle,
)
from tests.integration.notifications.receivers import http_receiver
from tests.support.api import Account, error_fields

RULES = "/api/v1/notification-rules"


async def make_template(client: httpx.AsyncClient, admin: Account) -> str:
    created = await client.post(
        "/api/v1/templates", headers=admin.headers, json={"name": "t-" + uuid.uuid4().hex[:6]}
    )
    assert created.status_code == 201, created.text
    template_id: str = created.json()["id"]
    return template_id


def event(admin: Account, name: str, **facts: Any) -> Event:
    return Event(
        name=name,
        tenant_id=UUID(admin.tenant_id),
        subject_type="deployment",
        subject_id=uuid.uuid4(),
        title="deploy-web",
        **facts,
    )


async def fire(runtime: Runtime, item: Event) -> int:
    async with runtime.db.session(tenant_id=item.tenant_id) as session:
        return await emit(session, item)


async def test_rule_validation(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    theirs = await create_channel(client, other_admin, "discord", {"url": "http://127.0.0.1:9/y"})
    their_template = await make_template(client, other_admin)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"events": ["deployment.exploded"]}, "events"),
        ({"events": []}, "events"),
        ({"scope": {"type": "template"}}, "scope.id"),
        ({"scope": {"type": "template", "id": their_template}}, "scope.id"),
        ({"scope": {"type": "repository", "id": str(uuid.uuid4())}}, "scope.id"),
        ({"scope": {"type": "tenant", "id": str(uuid.uuid4())}}, "scope.id"),
        ({"channel_id": theirs["id"]}, "channel_id"),
    ]
    for change, field in cases:
        body = {"channel_id": channel["id"], "events": ["deployment.failed"], **change}
        response = await client.post(RULES, headers=admin.headers, json=body)
        assert response.status_code == 422, (change, response.text)
        assert error_fields(response) == [field], (change, response.text)
    rule = await create_rule(client, admin, channel["id"], ["deployment.failed"], name="fails")
    assert rule["scope"] == {"type": "tenant", "id": None}
    for method in ("GET", "PATCH", "DELETE"):
        other = await client.request(
            method,
            f"{RULES}/{rule['id']}",
            headers=other_admin.headers,
            json={} if method == "PATCH" else None,
        )
        assert other.status_code == 404
    changed = await client.patch(
        f"{RULES}/{rule['id']}",
        headers=admin.headers,
        json={"events": ["deployment.failed", "deployment.partial"], "only_on_change": True},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["deployment.failed", "deployment.partial"]
    listed = await client.get(RULES, headers=admin.headers)
    assert [item["id"] for item in listed.json()] == [rule["id"]]
    assert (await client.delete(f"{RULES}/{rule['id']}", headers=admin.headers)).status_code == 204


async def test_scope_failed_partial_and_only_on_change(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    template_id = await make_template(client, admin)
    other_template = await make_template(client, admin)
    await create_rule(client, admin, channel["id"], ["deployment.failed"])
    await create_rule(
        client,
        admin,
        channel["id"],
        ["deployment.partial"],
        scope={"type": "template", "id": template_id},
    )
    on_change = await create_rule(
        client,
        admin,
        channel["id"],
        ["deployment.failed", "deployment.succeeded"],
        scope={"type": "template", "id": other_template},
        only_on_change=True,
    )
    t1, t2 = UUID(template_id), UUID(other_template)
    # failed goes to the tenant-wide rule; partial does not count as failed.
    assert await fire(runtime, event(admin, "deployment.failed")) == 1
    assert await fire(runtime, event(admin, "deployment.partial")) == 0
    # The template-scoped partial rule: its template only.
    assert await fire(runtime, event(admin, "deployment.partial", template_id=t1)) == 1
    assert await fire(runtime, event(admin, "deployment.partial", template_id=uuid.uuid4())) == 0
    # Only on change (template t2): a first success is no news; the first failure is, the
    # second is not; the success after it is; the next success is not.
    assert await fire(runtime, event(admin, "deployment.succeeded", template_id=t2)) == 0
    assert await fire(runtime, event(admin, "deployment.failed", template_id=t2)) == 2
    assert await fire(runtime, event(admin, "deployment.failed", template_id=t2)) == 1
    assert await fire(runtime, event(admin, "deployment.succeeded", template_id=t2)) == 1
    assert await fire(runtime, event(admin, "deployment.succeeded", template_id=t2)) == 0
    # A disabled rule, a disabled channel: nothing.
    await client.patch(f"{RULES}/{on_change['id']}", headers=admin.headers, json={"enabled": False})
    assert await fire(runtime, event(admin, "deployment.failed", template_id=t2)) == 1
    await client.patch(
        f"/api/v1/notification-channels/{channel['id']}",
        headers=admin.headers,
        json={"enabled": False},
    )
    assert await fire(runtime, event(admin, "deployment.failed")) == 0
    found = await deliveries(client, admin, channel["id"])
    assert len(found) == 7 and {d["status"] for d in found} == {"pending"}


async def test_retry_until_the_receiver_answers(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings, db: Database
) -> None:
    async with http_receiver([(500, "down"), (503, "still down")]) as receiver:
        channel = await create_channel(client, admin, "slack", {"url": f"{receiver.url}/s/1"})
        await create_rule(client, admin, channel["id"], ["deployment.failed"])
        queued = await fire(
            runtime,
            event(
                admin,
                "deployment.failed",
                status="failed",
                failed_hosts=(FailedHost("web-1", 3),),
                path="/deployments/abc",
            ),
        )
        assert queued == 1
        (delivery,) = await settle(client, admin, channel["id"], settings=settings, db=db)
        assert len(receiver.requests) == 3
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["succeeded"] for a in log] == [False, False, True]
    assert log[0]["reply"] == "down" and "HTTP 500" in log[0]["error"]
    text = receiver.requests[2].json()["text"]
    assert "deploy-web" in text and "https://shipyard.example.com/deployments/abc" in text


@pytest.mark.parametrize("settings", [{"notification_max_attempts": 3}], indirect=True)
async def test_gives_up_after_the_last_attempt(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime, settings: Settings, db: Database
) -> None:
    async with http_receiver() as receiver:
        receiver.default = (500, "no")
        channel = await create_channel(client, admin, "discord", {"url": f"{receiver.url}/d"})
        await create_rule(client, admin, channel["id"], ["host.offline"])
        await fire(runtime, event(admin, "host.offline"))
        (delivery,) = await settle(client, admin, channel["id"], settings=settings, db=db)
        assert len(receiver.requests) == 3
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert delivery["last_error"] == "the receiver answered HTTP 500"
