"""The channel and rule edit pages over HTTP: the form shows the stored settings and never a
secret; saving without retyping a secret keeps it (the receiver still checks the signature, the
SMTP server still authenticates), retyping replaces it, "clear" removes it; bad input is a 422
naming the field; another tenant's ids are 404; a developer is refused (403)."""

from __future__ import annotations

import hashlib
import hmac
import html
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.integration.notifications.conftest import create_channel, create_rule
from tests.integration.notifications.receivers import http_receiver, self_signed, smtp_server
from tests.support import canary
from tests.support.api import Account, add_member, error_fields
from tests.support.browser_http import browser_client, csrf_token

CHANNELS = "/api/v1/notification-channels"
RULES = "/api/v1/notification-rules"


def signed_with(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def read(client: httpx.AsyncClient, admin: Account, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_webhook_channel_edit_keeps_or_replaces_the_signing_secret(
    client: httpx.AsyncClient, admin: Account
) -> None:
    first = canary.remember("whsec-first-" + uuid.uuid4().hex, "webhook secret")
    second = canary.remember("whsec-second-" + uuid.uuid4().hex, "webhook secret")
    async with http_receiver() as receiver, browser_client(client, admin) as http:
        hook_url = receiver.url + "/hook"
        channel = await create_channel(client, admin, "webhook", {"url": hook_url, "secret": first})
        edit = f"/notifications/channels/{channel['id']}/edit"
        page = await http.get(edit)
        assert page.status_code == 200, page.text
        assert f'value="{channel["name"]}"' in page.text and f'value="{hook_url}"' in page.text
        assert first not in page.text
        assert "leave empty to keep it" in page.text and 'name="enabled" ' in page.text
        assert 'id="webhook-f-enabled" checked' in page.text
        assert "clear_secret" not in page.text  # every webhook message is signed
        channel_page = await http.get(f"/notifications/channels/{channel['id']}")
        assert f'href="{edit}"' in channel_page.text
        token = await csrf_token(http, edit)
        form = {"csrf_token": token, "name": "renamed-hook", "url": hook_url, "enabled": "on"}

        # Saved without the secret: renamed, the secret kept (the receiver checks it).
        saved = await http.post(edit, data={**form, "secret": ""})
        assert saved.status_code == 303, saved.text
        stored = await read(client, admin, f"{CHANNELS}/{channel['id']}")
        assert stored["name"] == "renamed-hook" and stored["config"]["has_secret"] is True
        tested = await http.post(
            f"/notifications/channels/{channel['id']}/test", data={"csrf_token": token}
        )
        assert "Delivered" in tested.text
        sent = receiver.requests[-1]
        assert sent.headers["x-shipyard-signature"] == signed_with(first, sent.body)

        # Retyped: the new one signs.
        saved = await http.post(edit, data={**form, "secret": second})
        assert saved.status_code == 303, saved.text
        tested = await http.post(
            f"/notifications/channels/{channel['id']}/test", data={"csrf_token": token}
        )
        assert "Delivered" in tested.text
        sent = receiver.requests[-1]
        assert sent.headers["x-shipyard-signature"] == signed_with(second, sent.body)

        # Bad input: 422 naming the field, what was typed kept, no secret echoed.
        short = await http.post(edit, data={**form, "secret": "short"})
        assert short.status_code == 422
        assert 'id="webhook-e-secret"' in short.text and 'value="short"' not in short.text
        bad_url = await http.post(edit, data={**form, "url": "ftp://example.com/x"})
        assert bad_url.status_code == 422 and 'id="webhook-e-url"' in bad_url.text
        assert 'value="ftp://example.com/x"' in bad_url.text
        bad_template = await http.post(edit, data={**form, "body_template": "{{ oops"})
        assert bad_template.status_code == 422
        assert 'id="webhook-e-body_template"' in bad_template.text
        no_name = await http.post(edit, data={**form, "name": ""})
        assert no_name.status_code == 422 and 'id="webhook-e-name"' in no_name.text

        # A name taken by another channel: 409, the name field says so.
        other = await create_channel(client, admin, "discord", {"url": receiver.url + "/d"})
        taken = await http.post(edit, data={**form, "name": other["name"]})
        assert taken.status_code == 409 and 'id="webhook-e-name"' in taken.text

        # Through the API alike: a webhook's secret cannot be removed (every message is signed).
        removed = await client.patch(
            f"{CHANNELS}/{channel['id']}", headers=admin.headers, json={"config": {"secret": None}}
        )
        assert removed.status_code == 422 and error_fields(removed) == ["config.secret"]

        # Disabled from the form (the box left unticked).
        off = await http.post(edit, data={k: v for k, v in form.items() if k != "enabled"})
        assert off.status_code == 303
        assert (await read(client, admin, f"{CHANNELS}/{channel['id']}"))["enabled"] is False
        unchanged = await read(client, admin, f"{CHANNELS}/{channel['id']}")
        assert unchanged["name"] == "renamed-hook" and unchanged["config"]["url"] == hook_url


async def test_email_channel_edit_keeps_clears_and_retypes_the_password(
    client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    certificate = self_signed(tmp_path)
    password = canary.remember("smtp-edit-" + uuid.uuid4().hex, "SMTP password")
    async with (
        smtp_server(certificate=certificate, username="mailer", password=password) as (
            mailbox,
            port,
        ),
        browser_client(client, admin) as http,
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
        edit = f"/notifications/channels/{channel['id']}/edit"
        page = await http.get(edit)
        assert page.status_code == 200
        text = html.unescape(page.text)
        assert 'value="ops@example.com"' in text and f'value="{port}"' in text
        assert "BEGIN CERTIFICATE" in text and password not in text
        assert 'name="clear_password"' in page.text
        token = await csrf_token(http, edit)
        form = {
            "csrf_token": token,
            "name": channel["name"],
            "host": "127.0.0.1",
            "port": str(port),
            "security": "starttls",
            "username": "mailer",
            "password": "",
            "from": "shipyard@example.com",
            "to": "ops@example.com, dev@example.com",
            "ca_certificate": certificate.cert_pem,
            "enabled": "on",
        }
        saved = await http.post(edit, data=form)
        assert saved.status_code == 303, saved.text
        tested = await http.post(
            f"/notifications/channels/{channel['id']}/test", data={"csrf_token": token}
        )
        assert "Delivered" in tested.text, tested.text
        ((envelope, _),) = mailbox.messages
        assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]

        # Cleared: no password is stored, the server refuses to take the mail.
        cleared = await http.post(edit, data={**form, "clear_password": "on"})
        assert cleared.status_code == 303, cleared.text
        stored = await read(client, admin, f"{CHANNELS}/{channel['id']}")
        assert stored["config"]["has_password"] is False
        refused = await http.post(
            f"/notifications/channels/{channel['id']}/test", data={"csrf_token": token}
        )
        assert "Not delivered" in refused.text and len(mailbox.messages) == 1

        # Retyped: it authenticates again.
        retyped = await http.post(edit, data={**form, "password": password})
        assert retyped.status_code == 303, retyped.text
        tested = await http.post(
            f"/notifications/channels/{channel['id']}/test", data={"csrf_token": token}
        )
        assert "Delivered" in tested.text and len(mailbox.messages) == 2

        bad_port = await http.post(edit, data={**form, "port": "0"})
        assert bad_port.status_code == 422 and 'id="email-e-port"' in bad_port.text
        no_to = await http.post(edit, data={**form, "to": ""})
        assert no_to.status_code == 422 and 'id="email-e-to"' in no_to.text


async def test_ntfy_token_clear_and_slack_url_kept(
    client: httpx.AsyncClient, admin: Account
) -> None:
    ntfy_token = canary.remember("tk_" + uuid.uuid4().hex, "ntfy token")
    async with http_receiver() as receiver, browser_client(client, admin) as http:
        ntfy = await create_channel(
            client,
            admin,
            "ntfy",
            {"server": receiver.url, "topic": "deploys", "token": ntfy_token},
        )
        edit = f"/notifications/channels/{ntfy['id']}/edit"
        token = await csrf_token(http, edit)
        form = {
            "csrf_token": token,
            "name": ntfy["name"],
            "server": receiver.url,
            "topic": "releases",
            "priority": "4",
            "enabled": "on",
        }
        assert (await http.post(edit, data=form)).status_code == 303
        await http.post(f"/notifications/channels/{ntfy['id']}/test", data={"csrf_token": token})
        sent = receiver.requests[-1]
        assert sent.path == "/releases" and sent.headers["authorization"] == f"Bearer {ntfy_token}"
        bad_topic = await http.post(edit, data={**form, "topic": "no spaces"})
        assert bad_topic.status_code == 422 and 'id="ntfy-e-topic"' in bad_topic.text
        assert (await http.post(edit, data={**form, "clear_token": "on"})).status_code == 303
        await http.post(f"/notifications/channels/{ntfy['id']}/test", data={"csrf_token": token})
        assert "authorization" not in receiver.requests[-1].headers

        # Slack: the URL is the credential; left empty it is kept (and never shown).
        # (Not given to the canary: the tests log httpx at debug, which names every URL; a
        # running server keeps httpx at warnings, see shipyard.logs.)
        secret_path = f"/services/T1/B1/{uuid.uuid4().hex}"
        slack = await create_channel(client, admin, "slack", {"url": receiver.url + secret_path})
        edit = f"/notifications/channels/{slack['id']}/edit"
        page = await http.get(edit)
        assert secret_path not in page.text and "clear_url" not in page.text
        saved = await http.post(
            edit, data={"csrf_token": token, "name": "slack-renamed", "url": "", "enabled": "on"}
        )
        assert saved.status_code == 303, saved.text
        await http.post(f"/notifications/channels/{slack['id']}/test", data={"csrf_token": token})
        assert receiver.requests[-1].path == secret_path


async def test_rule_edit_page(client: httpx.AsyncClient, admin: Account) -> None:
    first = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/a"})
    second = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/b"})
    rule = await create_rule(client, admin, first["id"], ["deployment.failed"], name="on-fail")
    async with browser_client(client, admin) as http:
        listing = await http.get("/notifications")
        edit = f"/notifications/rules/{rule['id']}/edit"
        assert f'href="{edit}"' in listing.text
        page = await http.get(edit)
        assert page.status_code == 200
        assert 'value="deployment.failed" checked' in page.text
        assert 'value="host.offline">' in page.text
        assert f'<option value="{first["id"]}" selected>' in page.text
        assert 'value="on-fail"' in page.text and 'id="rule-f-enabled" checked' in page.text
        token = await csrf_token(http, edit)
        form: dict[str, Any] = {
            "csrf_token": token,
            "name": "on-fail",
            "channel_id": second["id"],
            "scope_type": "tenant",
            "scope_id": "",
            "events": ["deployment.failed", "deployment.partial"],
            "only_on_change": "on",
        }
        saved = await http.post(edit, data=form)
        assert saved.status_code == 303, saved.text
        stored = await read(client, admin, f"{RULES}/{rule['id']}")
        assert stored["channel_id"] == second["id"]
        assert stored["events"] == ["deployment.failed", "deployment.partial"]
        assert stored["only_on_change"] is True and stored["enabled"] is False

        no_events = await http.post(edit, data={**form, "events": []})
        assert no_events.status_code == 422 and 'id="rule-e-events"' in no_events.text
        no_scope_id = await http.post(edit, data={**form, "scope_type": "template"})
        assert no_scope_id.status_code == 422 and 'id="rule-e-scope"' in no_scope_id.text
        unknown = await http.post(
            edit, data={**form, "scope_type": "template", "scope_id": str(uuid.uuid4())}
        )
        assert unknown.status_code == 422 and "no such template" in unknown.text.lower()
        enabled = await http.post(edit, data={**form, "enabled": "on"})
        assert enabled.status_code == 303
        assert (await read(client, admin, f"{RULES}/{rule['id']}"))["enabled"] is True


async def test_other_tenants_ids_are_404(
    client: httpx.AsyncClient, admin: Account, other_admin: Account
) -> None:
    channel = await create_channel(client, admin, "discord", {"url": "http://127.0.0.1:9/x"})
    rule = await create_rule(client, admin, channel["id"], ["host.offline"])
    async with browser_client(client, other_admin) as http:
        token = await csrf_token(http, "/notifications")
        for path, data in (
            (f"/notifications/channels/{channel['id']}/edit", {"name": "mine", "url": ""}),
            (f"/notifications/rules/{rule['id']}/edit", {"events": ["host.offline"]}),
        ):
            assert (await http.get(path)).status_code == 404, path
            posted = await http.post(path, data={"csrf_token": token, **data})
            assert posted.status_code == 404, (path, posted.text)
        # Their own rule cannot be pointed at this tenant's channel either.
        theirs = await create_channel(
            client, other_admin, "discord", {"url": "http://127.0.0.1:9/y"}
        )
        their_rule = await create_rule(client, other_admin, theirs["id"], ["host.offline"])
        moved = await http.post(
            f"/notifications/rules/{their_rule['id']}/edit",
            data={
                "csrf_token": token,
                "channel_id": channel["id"],
                "scope_type": "tenant",
                "events": ["host.offline"],
            },
        )
        assert moved.status_code == 422 and 'id="rule-e-channel_id"' in moved.text
    assert (await read(client, admin, f"{CHANNELS}/{channel['id']}"))["name"] == channel["name"]
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, developer) as http:
        for path in (
            f"/notifications/channels/{channel['id']}/edit",
            f"/notifications/rules/{rule['id']}/edit",
        ):
            assert (await http.get(path)).status_code == 403, path
