"""The notifications pages over HTTP: create a channel through its form (the secret field
write-only, a refused address re-rendered naming the field), "Send test" showing what the
receiver answered, the deliveries with their attempts, a rule through its form; the Settings
page links to it for admins; others are refused."""

from __future__ import annotations

import html
import re
import uuid

import httpx

from tests.integration.notifications.receivers import http_receiver
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token


async def test_channel_form_send_test_deliveries_and_rule(
    client: httpx.AsyncClient, admin: Account
) -> None:
    async with (
        http_receiver([(200, "hello from discord")]) as receiver,
        browser_client(client, admin) as http,
    ):
        settings_page = await http.get("/settings")
        assert 'href="/notifications"' in settings_page.text
        token = await csrf_token(http, "/notifications")
        secret_path = f"/api/webhooks/1/{uuid.uuid4().hex}"
        missing = await http.post(
            "/notifications/channels",
            data={"csrf_token": token, "type": "discord", "name": "", "url": ""},
        )
        assert missing.status_code == 422
        assert 'id="discord-e-url"' in missing.text or "discord-f-url" in missing.text
        created = await http.post(
            "/notifications/channels",
            data={
                "csrf_token": token,
                "type": "discord",
                "name": "ops-discord",
                "url": receiver.url + secret_path,
            },
        )
        assert created.status_code == 303, created.text
        channel_url = created.headers["location"]
        page = await http.get(channel_url)
        assert page.status_code == 200 and "ops-discord" in page.text
        assert secret_path not in page.text and "has url" in page.text
        tested = await http.post(f"{channel_url}/test", data={"csrf_token": token})
        assert tested.status_code == 200
        text = html.unescape(tested.text)
        assert "Delivered" in text and "the receiver answered 204" not in text
        assert "the receiver answered 200" in text and "hello from discord" in text
        assert receiver.requests[0].path == secret_path
        assert re.search(r"<td>test</td>", tested.text)

        # A generic webhook: its generated secret is shown on the answer only.
        made = await http.post(
            "/notifications/channels",
            data={
                "csrf_token": token,
                "type": "webhook",
                "name": "generic",
                "url": receiver.url + "/hook",
            },
        )
        assert made.status_code == 200 and 'id="generated-secret"' in made.text

        channel_id = channel_url.rsplit("/", 1)[1]
        bad_rule = await http.post(
            "/notifications/rules", data={"csrf_token": token, "channel_id": channel_id}
        )
        assert bad_rule.status_code == 422 and "field-error" in bad_rule.text
        rule = await http.post(
            "/notifications/rules",
            data={
                "csrf_token": token,
                "channel_id": channel_id,
                "scope_type": "tenant",
                "events": ["deployment.failed", "host.offline"],
                "only_on_change": "on",
            },
        )
        assert rule.status_code == 303, rule.text
        listing = await http.get("/notifications")
        assert "deployment.failed, host.offline" in listing.text

        deleted = await http.post(f"{channel_url}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303
        assert "ops-discord" not in (await http.get("/notifications")).text


async def test_others_are_refused(client: httpx.AsyncClient, admin: Account) -> None:
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, developer) as http:
        assert (await http.get("/notifications")).status_code == 403
        assert 'href="/notifications"' not in (await http.get("/settings")).text
