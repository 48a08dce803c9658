"""The audit pages: the filterable table, an entry's changes, export links, retention, and a
viewer's refused form recorded as denied."""

from __future__ import annotations

import re

import httpx

from tests.support import canary
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token


async def test_audit_pages(client: httpx.AsyncClient, admin: Account) -> None:
    password = canary.remember("web-audit-host-password", "host password")
    created = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": "web-a", "ip": "127.0.0.1", "user": "deploy", "password": password},
    )
    host_id = created.json()["id"]
    await client.patch(f"/api/v1/hosts/{host_id}", headers=admin.headers, json={"name": "web-b"})
    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, admin) as http:
        page = await http.get("/audit", params={"action": "host."})
        assert page.status_code == 200, page.text
        assert "host.update" in page.text and "host.create" in page.text
        assert "member.add" not in page.text
        assert "/api/v1/audit/export?action=host.&amp;format=csv" in page.text
        entry_id = re.findall(r'data-entry="([^"]+)"', page.text)[0]
        detail = await http.get(f"/audit/entries/{entry_id}")
        assert detail.status_code == 200
        assert 'data-field="name"' in detail.text and "web-b" in detail.text
        assert password not in detail.text

        token = await csrf_token(http, "/audit/settings")
        saved = await http.post(
            "/audit/settings", data={"csrf_token": token, "retention_days": "90"}
        )
        assert saved.status_code == 303
        settings = await client.get("/api/v1/audit/settings", headers=admin.headers)
        assert settings.json()["retention_days"] == 90
        bad = await http.post(
            "/audit/settings", data={"csrf_token": token, "retention_days": "zero"}
        )
        assert bad.status_code == 422

        # Streams are added on the same page: a syslog one without a host is refused naming
        # the field and keeps what was typed; a webhook's secret is shown once, never cached.
        no_host = await http.post(
            "/audit/streams",
            data={"csrf_token": token, "name": "siem", "type": "syslog", "port": "6514"},
        )
        assert no_host.status_code == 422, no_host.text
        assert "config.host" in no_host.text and 'value="6514"' in no_host.text
        made = await http.post(
            "/audit/streams",
            data={
                "csrf_token": token,
                "name": "hook",
                "type": "webhook",
                "url": "http://127.0.0.1:9/audit",
            },
        )
        assert made.status_code == 201, made.text
        assert made.headers["cache-control"] == "no-store"
        shown = re.search(r'<code id="stream-secret">([^<]+)</code>', made.text)
        assert shown is not None
        secret = canary.remember(shown.group(1), "audit stream secret (web)")
        streams = await client.get("/api/v1/audit/streams", headers=admin.headers)
        (stream,) = streams.json()["items"] if "items" in streams.json() else streams.json()
        assert stream["name"] == "hook" and stream["has_secret"] is True
        again = await http.get("/audit/settings")
        assert "hook" in again.text and secret not in again.text

    async with browser_client(client, viewer) as http:
        assert (await http.get("/audit")).status_code == 403
        token = await csrf_token(http, "/settings")
        refused = await http.post(
            "/audit/settings", data={"csrf_token": token, "retention_days": "1"}
        )
        assert refused.status_code == 403
    denied = await client.get("/api/v1/audit", headers=admin.headers, params={"outcome": "denied"})
    assert [(e["action"], e["actor"]["id"]) for e in denied.json()["items"]] == [
        ("audit_settings.update", viewer.user_id)
    ]
