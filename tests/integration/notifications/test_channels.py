"""Notification channels against real receivers on loopback: Slack, Teams, Discord and ntfy
payload shapes as their documentation describes them, the generic webhook's signature checked
by the receiver, SMTP (plain, and STARTTLS with authentication on a certificate made here);
secrets never returned; the outbound policy at save time; "send test" with a dead receiver."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.runtime import Runtime
from tests.integration.notifications.conftest import create_channel, deliveries
from tests.integration.notifications.receivers import http_receiver, self_signed, smtp_server
from tests.support import canary
from tests.support.api import Account, add_member, error_fields

CHANNELS = "/api/v1/notification-channels"


async def send_test(client: httpx.AsyncClient, admin: Account, channel_id: str) -> dict[str, Any]:
    response = await client.post(f"{CHANNELS}/{channel_id}/test", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_slack_payload_and_url_is_write_only(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with http_receiver() as receiver:
        url = f"{receiver.url}/services/T000/B000/{uuid.uuid4().hex}"
        channel = await create_channel(client, admin, "slack", {"url": url})
        assert url not in str(channel) and channel["config"] == {"has_url": True}
        listed = await client.get(CHANNELS, headers=admin.headers)
        assert url not in listed.text
        answer = await send_test(client, admin, channel["id"])
        assert answer["ok"] is True and answer["status_code"] == 200 and answer["reply"] == "ok"
        (request,) = receiver.requests
        assert request.path.startswith("/services/T000/B000/")
        assert request.headers["content-type"] == "application/json"
        payload = request.json()
        # Slack: `text` is the fallback, `blocks` Block Kit (header + mrkdwn sections).
        assert "Test message for channel" in payload["text"]
        assert payload["blocks"][0]["type"] == "header"
        assert payload["blocks"][0]["text"]["type"] == "plain_text"
        assert all(block["type"] in ("header", "section") for block in payload["blocks"])
        assert "<https://shipyard.example.com/notifications|Open in Shipyard>" in str(payload)
    found = await deliveries(client, admin, channel["id"])
    assert found[0]["event"] == "test" and found[0]["status"] == "delivered"
    assert found[0]["attempt_log"][0]["status_code"] == 200


@pytest.mark.parametrize("card", ["adaptive", "message"])
async def test_teams_cards(client: httpx.AsyncClient, admin: Account, card: str) -> None:
    async with http_receiver() as receiver:
        channel = await create_channel(
            client, admin, "teams", {"url": f"{receiver.url}/webhookb2/x", "card": card}
        )
        assert channel["config"] == {"card": card, "has_url": True}
        assert (await send_test(client, admin, channel["id"]))["ok"]
        payload = receiver.requests[0].json()
    if card == "adaptive":
        # Teams incoming webhook (Workflows): a `message` with an Adaptive Card attachment.
        assert payload["type"] == "message"
        (attachment,) = payload["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        content = attachment["content"]
        assert content["type"] == "AdaptiveCard" and content["version"] == "1.4"
        assert content["body"][0]["type"] == "TextBlock"
        assert content["body"][1]["type"] == "FactSet"
        assert content["actions"][0] == {
            "type": "Action.OpenUrl",
            "title": "Open in Shipyard",
            "url": "https://shipyard.example.com/notifications",
        }
    else:
        assert payload["@type"] == "MessageCard"
        assert payload["@context"] == "https://schema.org/extensions"
        assert payload["summary"] and payload["sections"][0]["facts"]
        assert payload["potentialAction"][0]["@type"] == "OpenUri"


async def test_discord_payload(client: httpx.AsyncClient, admin: Account) -> None:
    async with http_receiver([(204, "")]) as receiver:
        channel = await create_channel(
            client, admin, "discord", {"url": f"{receiver.url}/api/webhooks/1/tok"}
        )
        answer = await send_test(client, admin, channel["id"])
        assert answer["ok"] is True and answer["status_code"] == 204
        payload = receiver.requests[0].json()
    assert payload["content"].startswith("[Shipyard] Test message")
    (embed,) = payload["embeds"]
    assert len(embed["title"]) <= 256 and isinstance(embed["color"], int)
    assert embed["url"] == "https://shipyard.example.com/notifications"
    assert all({"name", "value", "inline"} <= set(f) for f in embed["fields"])


async def test_ntfy_headers_and_token(client: httpx.AsyncClient, admin: Account) -> None:
    token = canary.remember("tk_" + uuid.uuid4().hex, "ntfy token")
    async with http_receiver([(200, '{"id":"abc","event":"message"}')]) as receiver:
        channel = await create_channel(
            client,
            admin,
            "ntfy",
            {"server": receiver.url, "topic": "deploys", "token": token, "priority": 4},
        )
        assert token not in str(channel)
        assert channel["config"]["has_token"] is True
        answer = await send_test(client, admin, channel["id"])
        assert answer["ok"] and '"event":"message"' in answer["reply"]
        (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/deploys"
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.headers["title"].startswith("[Shipyard] Test message")
    assert request.headers["priority"] == "4"
    assert request.headers["tags"] == "white_check_mark"
    assert request.headers["click"] == "https://shipyard.example.com/notifications"
    assert b"Sent from Shipyard" in request.body


async def test_webhook_signature_secret_shown_once_and_template(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with http_receiver() as receiver:
        channel = await create_channel(client, admin, "webhook", {"url": f"{receiver.url}/hook"})
        secret = canary.remember(channel["secret"], "notification webhook secret")
        assert len(secret) >= 32 and channel["config"]["has_secret"] is True
        shown = await client.get(f"{CHANNELS}/{channel['id']}", headers=admin.headers)
        assert secret not in shown.text and "secret" not in shown.json()
        assert (await send_test(client, admin, channel["id"]))["ok"]
        request = receiver.requests[0]
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-shipyard-signature"] == f"sha256={expected}"
        body = request.json()
        assert (
            body["event"] == "test" and body["link"] == "https://shipyard.example.com/notifications"
        )

        # A body template (sandboxed Jinja2) and a given secret.
        given = canary.remember("given-secret-" + uuid.uuid4().hex, "notification webhook secret")
        templated = await create_channel(
            client,
            admin,
            "webhook",
            {
                "url": f"{receiver.url}/t",
                "secret": given,
                "body_template": '{"msg": {{ subject | tojson }}, "e": "{{ event }}"}',
            },
        )
        assert templated.get("secret") is None
        assert (await send_test(client, admin, templated["id"]))["ok"]
        raw = receiver.requests[1].body
        assert receiver.requests[1].json()["e"] == "test"
        signature = hmac.new(given.encode(), raw, hashlib.sha256).hexdigest()
        assert receiver.requests[1].headers["x-shipyard-signature"] == f"sha256={signature}"

    unsafe = await client.post(
        CHANNELS,
        headers=admin.headers,
        json={
            "type": "webhook",
            "name": "bad-template",
            "config": {"url": "http://127.0.0.1:9/x", "body_template": "{% if %}"},
        },
    )
    assert unsafe.status_code == 422 and error_fields(unsafe) == ["config.body_template"]


async def test_smtp_plain(client: httpx.AsyncClient, admin: Account) -> None:
    async with smtp_server() as (mailbox, port):
        channel = await create_channel(
            client,
            admin,
            "email",
            {
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "from": "shipyard@example.com",
                "to": ["ops@example.com", "dev@example.com"],
            },
        )
        answer = await send_test(client, admin, channel["id"])
        assert answer["ok"] is True, answer
        assert answer["status_code"] == 250 and "queued as TEST123" in answer["reply"]
    ((envelope, message),) = mailbox.messages
    assert envelope.mail_from == "shipyard@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]
    assert message["From"] == "shipyard@example.com"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Subject"].strip().startswith("[Shipyard] Test message for channel")
    assert message["Date"] and message["Message-ID"].endswith("@example.com>")
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert "https://shipyard.example.com/notifications" in plain.get_content()
    assert "<a href=" in rich.get_content()


async def test_smtp_starttls_with_authentication(
    client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    certificate = self_signed(tmp_path)
    password = canary.remember("smtp-pass-" + uuid.uuid4().hex, "SMTP password")
    async with smtp_server(certificate=certificate, username="mailer", password=password) as (
        mailbox,
        port,
    ):
        config = {
            "host": "127.0.0.1",
            "port": port,
            "security": "starttls",
            "username": "mailer",
            "password": password,
            "from": "shipyard@example.com",
            "to": ["ops@example.com"],
            "ca_certificate": certificate.cert_pem,
        }
        channel = await create_channel(client, admin, "email", config)
        assert password not in str(channel) and channel["config"]["has_password"] is True
        answer = await send_test(client, admin, channel["id"])
        assert answer["ok"] is True, answer
        assert len(mailbox.messages) == 1

        # Without STARTTLS the server refuses to authenticate: the answer says so (not a 500).
        plain = await client.patch(
            f"{CHANNELS}/{channel['id']}",
            headers=admin.headers,
            json={"config": {"security": "none"}},
        )
        assert plain.status_code == 200, plain.text
        assert plain.json()["config"]["has_password"] is True  # kept: not sent again
        refused = await send_test(client, admin, channel["id"])
        assert refused["ok"] is False and refused["error"]

        # Not trusting the server's certificate: verification fails.
        await client.patch(
            f"{CHANNELS}/{channel['id']}",
            headers=admin.headers,
            json={"config": {"security": "starttls", "ca_certificate": None}},
        )
        untrusted = await send_test(client, admin, channel["id"])
        assert untrusted["ok"] is False and "certificate" in untrusted["error"].lower()
    assert len(mailbox.messages) == 1


async def test_dead_receiver_is_an_answer_not_an_error(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with http_receiver([(500, "boom")]) as receiver:
        channel = await create_channel(client, admin, "discord", {"url": f"{receiver.url}/x"})
        answer = await send_test(client, admin, channel["id"])
        assert answer == {**answer, "ok": False, "status_code": 500, "reply": "boom"}
        port = receiver.port
    gone = await send_test(client, admin, channel["id"])
    assert gone["ok"] is False and gone["status_code"] is None and "cannot reach" in gone["error"]
    assert str(port) not in str(gone) or "127.0.0.1" in gone["error"]


@pytest.mark.parametrize("settings", [{"outbound_allow_private": False}], indirect=True)
async def test_outbound_policy_refuses_at_save_and_send(
    client: httpx.AsyncClient, admin: Account, runtime: Runtime
) -> None:
    for channel_type, config, field in (
        ("slack", {"url": "http://127.0.0.1:9/services/x"}, "config.url"),
        ("webhook", {"url": "http://169.254.169.254/latest"}, "config.url"),
        ("ntfy", {"server": "http://10.0.0.1", "topic": "t"}, "config.server"),
        (
            "email",
            {"host": "127.0.0.1", "port": 25, "from": "a@example.com", "to": ["b@example.com"]},
            "config.host",
        ),
    ):
        refused = await client.post(
            CHANNELS,
            headers=admin.headers,
            json={"type": channel_type, "name": f"bad-{channel_type}", "config": config},
        )
        assert refused.status_code == 422, refused.text
        assert error_fields(refused) == [field]
        assert refused.json()["error"]["code"] == "outbound_refused"


async def test_validation_roles_isolation_and_audit(
    client: httpx.AsyncClient, admin: Account, other_admin: Account, runtime: Runtime
) -> None:
    bad_port = await client.post(
        CHANNELS,
        headers=admin.headers,
        json={
            "type": "email",
            "name": "m",
            "config": {"host": "h", "port": 0, "from": "a@b.co", "to": ["c@d.co"]},
        },
    )
    assert bad_port.status_code == 422 and error_fields(bad_port) == ["config.port"]
    bad_type = await client.post(
        CHANNELS, headers=admin.headers, json={"type": "pager", "name": "p", "config": {}}
    )
    assert bad_type.status_code == 422 and error_fields(bad_type) == ["type"]
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    duplicate = await client.post(
        CHANNELS,
        headers=admin.headers,
        json={
            "type": "discord",
            "name": channel["name"],
            "config": {"url": "http://127.0.0.1:9/y"},
        },
    )
    assert duplicate.status_code == 409
    for method, path in (
        ("GET", f"{CHANNELS}/{channel['id']}"),
        ("PATCH", f"{CHANNELS}/{channel['id']}"),
        ("POST", f"{CHANNELS}/{channel['id']}/test"),
        ("GET", f"{CHANNELS}/{channel['id']}/deliveries"),
        ("DELETE", f"{CHANNELS}/{channel['id']}"),
    ):
        other = await client.request(
            method, path, headers=other_admin.headers, json={} if method == "PATCH" else None
        )
        assert other.status_code == 404, (method, path, other.text)
    developer = await add_member(client, admin, "developer")
    assert (await client.get(CHANNELS, headers=developer.headers)).status_code == 403
    renamed = await client.patch(
        f"{CHANNELS}/{channel['id']}", headers=admin.headers, json={"name": "renamed"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    gone = await client.delete(f"{CHANNELS}/{channel['id']}", headers=admin.headers)
    assert gone.status_code == 204
    async with runtime.db.session(system=True) as session:
        actions = set(
            await session.scalars(
                select(AuditEvent.action).where(AuditEvent.resource_id == uuid.UUID(channel["id"]))
            )
        )
    assert {
        "notification_channel.create",
        "notification_channel.update",
        "notification_channel.delete",
    } <= actions
