"""Freeze windows over HTTP: the page linked from Settings, its form (a bad cron re-rendered
naming the field and keeping what was typed; a fixed window read in its zone), delete, the
banner on the deployments and templates pages while a window is in force, and a template
launch refused naming the window, then let through by an admin's override box with a reason;
viewers read only."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.builders.deployments import DeployBuilder
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token
from tests.support.git_server import GitFile

BERLIN = ZoneInfo("Europe/Berlin")


def text_of(page: httpx.Response) -> str:
    return html.unescape(page.text)


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> Any:
    response = await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def test_freeze_pages_banner_and_launch_override(deploy: DeployBuilder) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo({"ok.sh": GitFile("#!/bin/sh\necho web-freeze\n")})
    (host,) = await deploy.hosts(1)
    template = await api(
        client,
        admin,
        "POST",
        "/templates",
        {
            "name": "web-release",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["ok.sh"]}],
            "target": {"host_ids": [host["id"]]},
        },
    )
    async with browser_client(client, admin) as http:
        settings_page = await http.get("/settings")
        assert 'href="/freeze-windows"' in settings_page.text
        token = await csrf_token(http, "/freeze-windows")
        empty = await http.get("/freeze-windows")
        assert empty.status_code == 200 and "No freeze windows." in empty.text
        assert 'id="freeze-form"' in empty.text

        bad = await http.post(
            "/freeze-windows",
            data={
                "csrf_token": token,
                "name": "typed name",
                "kind": "recurring",
                "cron": "61 * * * *",
                "duration_minutes": "60",
                "timezone": "Europe/Berlin",
                "enabled": "1",
            },
        )
        assert bad.status_code == 422, bad.text
        assert 'aria-invalid="true" aria-describedby="e-cron"' in bad.text
        assert 'value="typed name"' in bad.text and 'value="61 * * * *"' in bad.text

        # A fixed window typed in Berlin's wall time, in force now.
        now = datetime.now(BERLIN)
        start = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        end = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
        saved = await http.post(
            "/freeze-windows",
            data={
                "csrf_token": token,
                "name": "web freeze",
                "kind": "fixed",
                "timezone": "Europe/Berlin",
                "starts_at": start,
                "ends_at": end,
                "enabled": "1",
            },
        )
        assert saved.status_code == 303, saved.text
        listed = await http.get("/freeze-windows")
        assert "web freeze" in listed.text and 'data-state="in-force"' in listed.text
        (window,) = (await api(client, admin, "GET", "/freeze-windows"))["items"]
        assert (
            datetime.fromisoformat(window["starts_at"])
            .astimezone(BERLIN)
            .strftime("%Y-%m-%dT%H:%M")
            == start
        )

        for page in ("/deployments", "/templates"):
            shown = await http.get(page)
            assert shown.status_code == 200
            assert 'id="freeze-banner"' in shown.text and "web freeze" in shown.text, page

        launch_url = f"/templates/{template['id']}/launch"
        detail = await http.get(f"/templates/{template['id']}")
        assert 'name="freeze_override"' in detail.text
        refused = await http.post(launch_url, data={"csrf_token": token})
        assert refused.status_code == 409, refused.text
        assert "web freeze" in text_of(refused)
        no_reason = await http.post(launch_url, data={"csrf_token": token, "freeze_override": "1"})
        assert no_reason.status_code == 422
        assert "freeze_override.reason" in text_of(no_reason)
        overridden = await http.post(
            launch_url,
            data={
                "csrf_token": token,
                "freeze_override": "1",
                "freeze_override_reason": "customer outage",
            },
        )
        assert overridden.status_code == 303, overridden.text
        run_id = overridden.headers["location"].rsplit("/", 1)[-1]
        run = await api(client, admin, "GET", f"/deployments/{run_id}")
        assert run["status"] in ("pending", "in_progress", "success")
        assert run["freeze_override_reason"] == "customer outage"
        run_page = await http.get(f"/deployments/{run_id}")
        assert 'id="detail-freeze-override"' in run_page.text
        assert "customer outage" in text_of(run_page)

        # The edit page is the form filled in (times in the window's zone); a bad change is
        # refused by field and keeps what was typed; a good one is saved.
        edit_url = f"/freeze-windows/{window['id']}/edit"
        edit = await http.get(edit_url)
        assert edit.status_code == 200, edit.text
        assert f'action="/freeze-windows/{window["id"]}"' in edit.text
        assert 'value="web freeze"' in edit.text and f'value="{start}"' in edit.text
        changed = {
            "csrf_token": token,
            "name": "web freeze",
            "kind": "fixed",
            "timezone": "Europe/Berlin",
            "starts_at": start,
            "ends_at": start,
        }
        refused_edit = await http.post(f"/freeze-windows/{window['id']}", data=changed)
        assert refused_edit.status_code == 422, refused_edit.text
        assert 'aria-invalid="true"' in refused_edit.text
        assert f'action="/freeze-windows/{window["id"]}"' in refused_edit.text
        saved_edit = await http.post(
            f"/freeze-windows/{window['id']}",
            data={**changed, "name": "web freeze (edited)", "ends_at": end, "enabled": "1"},
        )
        assert saved_edit.status_code == 303, saved_edit.text
        (edited,) = (await api(client, admin, "GET", "/freeze-windows"))["items"]
        assert edited["id"] == window["id"] and edited["name"] == "web freeze (edited)"
        assert edited["enabled"] is True and edited["ends_at"] == window["ends_at"]

    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        read_only = await http.get("/freeze-windows")
        assert read_only.status_code == 200 and "web freeze" in read_only.text
        assert 'id="freeze-form"' not in read_only.text and ">Delete<" not in read_only.text
        assert ">Edit<" not in read_only.text
        assert (await http.get(f"/freeze-windows/{window['id']}/edit")).status_code == 403
        token = await csrf_token(http, "/freeze-windows")
        denied = await http.post(
            f"/freeze-windows/{window['id']}/delete", data={"csrf_token": token}
        )
        assert denied.status_code == 403
        banner = await http.get("/deployments")
        assert 'id="freeze-banner"' in banner.text

    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/freeze-windows")
        deleted = await http.post(
            f"/freeze-windows/{window['id']}/delete", data={"csrf_token": token}
        )
        assert deleted.status_code == 303
        after = await http.get("/deployments")
        assert 'id="freeze-banner"' not in after.text
        assert re.search(r"No freeze windows", (await http.get("/freeze-windows")).text)
