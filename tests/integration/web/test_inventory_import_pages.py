"""Import page (paste or upload an Ansible inventory, see the report) and pool fields on forms."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from tests.support import canary
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token

PAGE_PASSWORD = canary.remember("page-import-pass-8812", "inventory password")


async def test_import_page_paste_and_upload_show_the_report(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    async with browser_client(client, admin) as http:
        hosts_page = await http.get("/hosts")
        assert 'href="/inventory/import"' in hosts_page.text
        token = await csrf_token(http, "/inventory/import")
        pasted = await http.post(
            "/inventory/import",
            data={
                "csrf_token": token,
                "format": "ini",
                "content": "[web]\nweb[1:2] ansible_host=127.0.0.1\n",
                "user": "deploy",
                "password": PAGE_PASSWORD,
            },
            files={"file": ("", b"", "application/octet-stream")},
        )
        assert pasted.status_code == 200, pasted.text
        assert 'id="import-report"' in pasted.text and "web1, web2" in pasted.text
        assert PAGE_PASSWORD not in pasted.text

        uploaded = await http.post(
            "/inventory/import",
            data={"csrf_token": token, "format": "yaml", "content": ""},
            files={
                "file": (
                    "hosts.yml",
                    b"all:\n  children:\n    web:\n      hosts:\n        web1:\n"
                    b"          ansible_host: 127.0.0.1\n",
                    "application/yaml",
                )
            },
        )
        assert uploaded.status_code == 200, uploaded.text
        report = uploaded.text.split('id="import-report"')[1]
        assert "Hosts updated</dt><dd>web1" in report and "Groups updated</dt><dd>web" in report

        broken = await http.post(
            "/inventory/import",
            data={
                "csrf_token": token,
                "format": "ini",
                "content": f"[web]\nweb9 ansible_password={PAGE_PASSWORD}\n[web:oops]\n",
            },
            files={"file": ("", b"", "application/octet-stream")},
        )
        assert broken.status_code == 422
        assert "Line 3: unknown section kind" in broken.text and PAGE_PASSWORD not in broken.text
    async with db.session(system=True) as session:
        audited = list(
            await session.scalars(
                select(AuditEvent.details)
                .where(AuditEvent.action == "inventory.import", AuditEvent.outcome == "success")
                .order_by(AuditEvent.created_at)
            )
        )
    # The web path writes the same audit entry as the API; the refused file writes none.
    assert [entry["format"] for entry in audited] == ["ini", "yaml"]
    assert audited[1]["updated"] == {"hosts": 1, "groups": 1}


async def test_pool_on_host_and_group_forms(client: httpx.AsyncClient, admin: Account) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/hosts/new")
        form = {
            "csrf_token": token,
            "name": "pooled",
            "ip": "127.0.0.1",
            "port": "22",
            "user": "deploy",
            "auth": "password",
            "password": "pw-12345",
            "pool": "dc-east",
        }
        created = await http.post("/hosts/new", data=form)
        assert created.status_code == 303, created.text
        host_path = created.headers["location"].split("?")[0]
        page = await http.get(host_path)
        assert "<code>dc-east</code>" in page.text
        edit = await http.get(f"{host_path}/edit")
        assert 'value="dc-east"' in edit.text
        refused = await http.post(f"{host_path}/edit", data={**form, "pool": "DC East"})
        assert refused.status_code == 422 and "lowercase" in refused.text

        group = await http.post(
            "/host-groups/new", data={"csrf_token": token, "name": "east", "pool": "dc-east"}
        )
        assert group.status_code == 303, group.text
        listed = await http.get("/host-groups")
        assert "<code>dc-east</code>" in listed.text
