"""Inventory pages: tags and variables on the host form and page, and the groups page.

Secret values are write-only: never in a page, kept when left blank, replaced when typed.
"""

from __future__ import annotations

from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.accounts.models import AuditEvent
from shipyard.db import Database
from shipyard.hosts.inventory import host_environments
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token

SECRET = "page-secret-value-31337"
REPLACED = "page-secret-replaced-4242"


async def environment_of(db: Database, admin: Account, host_id: str) -> dict[str, str]:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        found = await host_environments(
            session=session, tenant_id=UUID(admin.tenant_id), host_ids=[UUID(host_id)]
        )
    environment = found[UUID(host_id)]
    return {**environment.plain, **environment.secret}


async def test_host_form_sets_tags_and_write_only_variables(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/hosts/new")
        form = {
            "csrf_token": token,
            "name": "web-1",
            "ip": "127.0.0.1",
            "port": "22",
            "user": "deploy",
            "auth": "password",
            "password": "pw-12345",
            "tags": "web, eu",
            "variables_form": "1",
            "var_name_0": "REGION",
            "var_value_0": "eu-west",
            "var_name_1": "API_KEY",
            "var_value_1": SECRET,
            "var_secret_1": "1",
            "var_name_2": "",
            "var_value_2": "",
        }
        created = await http.post("/hosts/new", data=form)
        assert created.status_code == 303, created.text
        host_id = created.headers["location"].split("/")[2].split("?")[0]
        page = await http.get(f"/hosts/{host_id}")
        assert "REGION" in page.text and "eu-west" in page.text and "API_KEY" in page.text
        assert SECRET not in page.text and "<code>web</code>" in page.text
        edit = await http.get(f"/hosts/{host_id}/edit")
        assert SECRET not in edit.text and "stored — type to replace" in edit.text
        assert await environment_of(db, admin, host_id) == {"REGION": "eu-west", "API_KEY": SECRET}

        # Left blank, the secret stays; typed, it is replaced.
        kept = {**form, "name": "web-1", "var_value_0": "us", "var_value_1": ""}
        kept.pop("password")
        response = await http.post(f"/hosts/{host_id}/edit", data=kept)
        assert response.status_code == 303, response.text
        assert await environment_of(db, admin, host_id) == {"REGION": "us", "API_KEY": SECRET}
        response = await http.post(f"/hosts/{host_id}/edit", data={**kept, "var_value_1": REPLACED})
        assert response.status_code == 303, response.text
        assert (await environment_of(db, admin, host_id))["API_KEY"] == REPLACED

        refused = await http.post(
            f"/hosts/{host_id}/edit", data={**kept, "var_name_0": "LD_PRELOAD"}
        )
        assert refused.status_code == 422 and "LD_PRELOAD" in refused.text
        assert REPLACED not in refused.text


async def test_groups_page_add_edit_delete_with_audit(
    client: httpx.AsyncClient, admin: Account, db: Database
) -> None:
    host = await client.post(
        "/api/v1/hosts",
        headers=admin.headers,
        json={"name": "db-1", "ip": "127.0.0.1", "user": "deploy", "password": "pw-12345"},
    )
    host_id = host.json()["id"]
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/host-groups")
        form = {
            "csrf_token": token,
            "name": "prod",
            "description": "production",
            "host_ids": host_id,
            "variables_form": "1",
            "var_name_0": "DB_PASSWORD",
            "var_value_0": SECRET,
            "var_secret_0": "1",
        }
        created = await http.post("/host-groups/new", data=form)
        assert created.status_code == 303, created.text
        listed = await http.get("/host-groups")
        assert "prod" in listed.text and "db-1" in listed.text and "DB_PASSWORD" in listed.text
        assert SECRET not in listed.text
        group_id = (await client.get("/api/v1/host-groups", headers=admin.headers)).json()[0]["id"]
        edit = await http.get(f"/host-groups/{group_id}/edit")
        assert edit.status_code == 200 and SECRET not in edit.text
        assert 'value="' + host_id + '" checked' in edit.text

        taken = await http.post("/host-groups/new", data=form)
        assert taken.status_code == 409 and "already exists" in taken.text
        short = await http.post(
            f"/host-groups/{group_id}/edit", data={**form, "var_value_0": "abc"}
        )
        assert short.status_code == 422 and "DB_PASSWORD" in short.text

        renamed = await http.post(
            f"/host-groups/{group_id}/edit",
            data={**form, "name": "production", "var_value_0": ""},
        )
        assert renamed.status_code == 303, renamed.text
        assert (await environment_of(db, admin, host_id)) == {"DB_PASSWORD": SECRET}
        deleted = await http.post(f"/host-groups/{group_id}/delete", data={"csrf_token": token})
        assert deleted.status_code == 303

    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        assert (await http.get("/host-groups")).status_code == 200
        assert (await http.get("/host-groups/new")).status_code == 403

    async with db.session(system=True) as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.resource_type == "host_group", AuditEvent.outcome == "success")
                .order_by(AuditEvent.created_at)
            )
        )
    assert actions == ["host_group.create", "host_group.update", "host_group.delete"]
