"""Schedule and webhook pages over HTTP: the schedule form (a bad cron re-rendered naming the
field and keeping what was typed; the next ten fire times in the zone and UTC before saving,
as a full page and as the HTMX card), pause/resume, the fire history with its run; a webhook's
secret shown once and never again, rotation, the delivery log after a signed GitHub delivery;
viewers read only."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.schedules.models import Schedule
from shipyard.schedules.scheduler import fire_due
from tests.builders.deployments import DeployBuilder
from tests.builders.git import GitSyncBuilder
from tests.support import canary
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token
from tests.support.git_server import GitFile

COMMIT = "9" * 40


def text_of(page: httpx.Response) -> str:
    return html.unescape(page.text)


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> Any:
    response = await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def make_template(deploy: DeployBuilder) -> dict[str, Any]:
    repo = await deploy.repo({"job.sh": GitFile("#!/bin/sh\necho triggered\n", executable=True)})
    (host,) = await deploy.hosts(1)
    template: dict[str, Any] = await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": "triggered-" + uuid.uuid4().hex[:6],
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [{"script_id": repo.scripts["job.sh"]}],
            "target": {"host_ids": [host["id"]]},
            "parameters": [
                {"name": "version", "type": "string", "required": True, "pattern": "[0-9.]+"},
                {"name": "TOKEN", "type": "secret"},
            ],
        },
    )
    return template


def fire_rows(page: str) -> list[tuple[str, str]]:
    """(time in the zone, time in UTC) of each previewed fire time."""
    return re.findall(r'<td class="fire-local">([^<]+)</td><td class="fire-utc">([^<]+)</td>', page)


async def test_schedule_form_preview_pause_resume_and_fire_history(
    deploy: DeployBuilder, db: Database, settings: Settings
) -> None:
    client, admin = deploy.client, deploy.admin
    secret = canary.remember("sched-web-secret-" + uuid.uuid4().hex, "schedule secret (web)")
    template = await make_template(deploy)
    new = f"/templates/{template['id']}/schedules/new"
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, new)
        form = {
            "csrf_token": token,
            "enabled_form": "1",
            "enabled": "1",
            "cron": "61 2 * * *",
            "timezone": "Europe/Berlin",
            "kind.version": "string",
            "param.version": "1.2",
            "kind.TOKEN": "secret",
            "param.TOKEN": secret,
            "overlap_policy": "allow",
            "missed_policy": "skip",
            "name": "nightly typed",
        }
        bad = await http.post(new, data={**form, "action": "save"})
        assert bad.status_code == 422, bad.text
        assert (
            'id="e-cron"' in bad.text
            and 'aria-invalid="true" aria-describedby="e-cron"' in bad.text
        )
        page = text_of(bad)
        assert 'value="61 2 * * *"' in page and 'value="1.2"' in page
        assert 'value="nightly typed"' in page and secret not in page

        # The Preview button (no JavaScript): the whole form back with ten times, zone and UTC.
        form["cron"] = "30 2 * * *"
        previewed = await http.post(new, data={**form, "action": "preview"})
        assert previewed.status_code == 200, previewed.text
        rows = fire_rows(previewed.text)
        assert len(rows) == 10
        for local, utc in rows:
            assert "02:30 CE" in local and local.endswith(("(UTC+0100)", "(UTC+0200)"))
            assert utc.endswith(("01:30 UTC", "00:30 UTC"))
        assert "At 02:30" in previewed.text and secret not in previewed.text
        # The live card (HTMX, as the cron line changes): the card alone.
        live = await http.post(
            "/schedules/preview",
            data={**form, "cron": "0 9 * * 1-5"},
            headers={"HX-Request": "true"},
        )
        assert live.status_code == 200 and "<html" not in live.text
        assert len(fire_rows(live.text)) == 10
        assert all("09:00" in local for local, _ in fire_rows(live.text))
        wrong_zone = await http.post(
            "/schedules/preview",
            data={**form, "timezone": "Mars/Olympus"},
            headers={"HX-Request": "true"},
        )
        assert wrong_zone.status_code == 422 and 'data-field="timezone"' in wrong_zone.text

        saved = await http.post(new, data={**form, "action": "save"})
        assert saved.status_code == 303, saved.text
        schedule_url = saved.headers["location"]
        schedule_id = schedule_url.rsplit("/", 1)[1]
        shown = text_of(await http.get(schedule_url))
        assert "At 02:30" in shown and 'data-state="enabled"' in shown
        assert len(fire_rows(shown)) == 10 and secret not in shown
        listed = text_of(await http.get("/schedules"))
        assert "nightly typed" in listed and "Europe/Berlin" in listed and "At 02:30" in listed

        paused = await http.post(f"{schedule_url}/pause", data={"csrf_token": token})
        assert paused.status_code == 303
        shown = text_of(await http.get(schedule_url))
        assert 'data-state="paused"' in shown and "none (paused)" in shown
        resumed = await http.post(f"{schedule_url}/resume", data={"csrf_token": token})
        assert resumed.status_code == 303
        assert 'data-state="enabled"' in (await http.get(schedule_url)).text

        # Edit: the stored values in the form (not the secret); left blank, the secret is kept.
        edit = await http.get(f"{schedule_url}/edit")
        assert edit.status_code == 200 and secret not in edit.text
        assert 'value="30 2 * * *"' in edit.text and 'value="Europe/Berlin"' in edit.text
        assert 'value="1.2"' in edit.text and "Stored — type to replace" in text_of(edit)
        changed = {**form, "cron": "0 3 * * *", "param.TOKEN": "", "action": "save"}
        bad_edit = await http.post(f"{schedule_url}/edit", data={**changed, "cron": "0 3 * *"})
        assert bad_edit.status_code == 422 and 'id="e-cron"' in bad_edit.text
        assert 'value="0 3 * *"' in bad_edit.text
        edited = await http.post(f"{schedule_url}/edit", data=changed)
        assert edited.status_code == 303, edited.text
        assert "At 03:00" in (await http.get(schedule_url)).text
        stored_api = await api(client, admin, "GET", f"/schedules/{schedule_id}")
        assert stored_api["parameters"] == {"version": "1.2", "TOKEN": "***"}

        # A fire (the scheduler's transaction at the fire time): the history names the run.
        async with db.session(system=True) as session:
            stored = await session.scalar(
                select(Schedule).where(Schedule.id == uuid.UUID(schedule_id))
            )
            assert stored is not None and stored.next_fire_at is not None
            assert json.loads(stored.secret_parameters or "{}") == {"TOKEN": secret}
            due = stored.next_fire_at
        async with db.session(system=True) as session:
            result = await fire_due(session, now=due + timedelta(seconds=1), settings=settings)
        assert result.fired == 1, result
        history = await http.get(schedule_url)
        fire = re.search(
            r'<tr class="fire" data-verdict="ran">.*?href="/deployments/([0-9a-f-]+)"',
            history.text,
            re.S,
        )
        assert fire, history.text
        assert re.search(r'data-verdict="ran">\s*<td>[^<]+ 03:00 CE', history.text)  # its zone
        run = await api(client, admin, "GET", f"/deployments/{fire.group(1)}")
        assert run["trigger"] == "schedule" and run["schedule_id"] == schedule_id
        assert 'data-verdict="ran"' in (await http.get("/schedules")).text
        triggers = await http.get(
            f"/templates/{template['id']}/triggers", headers={"HX-Request": "true"}
        )
        assert f'href="/schedules/{schedule_id}"' in triggers.text and "<html" not in triggers.text

    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        token = await csrf_token(http, schedule_url)
        seen = await http.get(schedule_url)
        assert seen.status_code == 200 and "Fire history" in seen.text
        assert f"{schedule_url}/pause" not in seen.text and "Delete" not in seen.text
        assert (await http.get(new)).status_code == 403
        refused = await http.post(f"{schedule_url}/pause", data={"csrf_token": token})
        assert refused.status_code == 403
        assert 'data-state="enabled"' in (await http.get(schedule_url)).text
        assert (
            "Add a schedule" not in (await http.get(f"/templates/{template['id']}/triggers")).text
        )


def github_push(branch: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "before": "0" * 40,
            "after": COMMIT,
            "repository": {"full_name": "acme/app"},
            "commits": [{"id": COMMIT, "added": ["deploy/app.sh"], "modified": [], "removed": []}],
            "head_commit": {"id": COMMIT, "message": "ship it"},
        }
    ).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
    }


def signed(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {**headers, "X-Hub-Signature-256": f"sha256={digest}"}


async def test_webhook_secret_once_rotation_delivery_log_and_viewer(
    deploy: DeployBuilder,
) -> None:
    client, admin = deploy.client, deploy.admin
    template = await make_template(deploy)
    new = f"/templates/{template['id']}/webhooks/new"
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, new)
        form = {
            "csrf_token": token,
            "provider": "github",
            "branches": "main\nrelease/*",
            "paths": "deploy/**",
            "map_name_0": "version",
            "map_path_0": "head_commit.id",
        }
        refused = await http.post(new, data=form)  # no event ticked
        assert refused.status_code == 422, refused.text
        assert 'id="e-events"' in refused.text
        assert "main\nrelease/*" in text_of(refused) and 'value="head_commit.id"' in refused.text

        created = await http.post(new, data={**form, "events": "push"})
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        secret_match = re.search(r'<code id="hook-secret">([^<]+)</code>', created.text)
        url_match = re.search(r'<code id="hook-url">([^<]+)</code>', created.text)
        assert secret_match and url_match
        secret = canary.remember(html.unescape(secret_match.group(1)), "webhook secret (web)")
        assert "Payload URL" in created.text and "application/json" in created.text
        assert created.text.count(secret) >= 2  # the secret and GitHub's settings to enter
        hook_id = url_match.group(1).rsplit("/", 1)[1]
        hook_page = f"/webhooks/{hook_id}"
        page = await http.get(hook_page)
        assert page.status_code == 200 and secret not in page.text
        assert "main, release/*" in text_of(page) and "not from a connected provider" in page.text
        assert secret not in (await http.get(f"/templates/{template['id']}/triggers")).text

        # A signed push from GitHub, through the app: it runs the pushed commit.
        body, headers = github_push("main")
        delivered = await client.post(
            f"/api/v1/hooks/{hook_id}", content=body, headers=signed(secret, body, headers)
        )
        assert delivered.status_code == 202, delivered.text
        deployment_id = delivered.json()["deployment_id"]
        again = await client.post(
            f"/api/v1/hooks/{hook_id}", content=body, headers=signed(secret, body, headers)
        )
        assert again.json()["verdict"] == "duplicate"
        other, other_headers = github_push("feature/x")
        filtered = await client.post(
            f"/api/v1/hooks/{hook_id}", content=other, headers=signed(secret, other, other_headers)
        )
        assert filtered.json()["verdict"] == "filtered"
        log = text_of(await http.get(hook_page))
        ran = re.search(r'<tr class="delivery" data-verdict="ran">(.*?)</tr>', log, re.S)
        assert ran, log
        assert f'href="/deployments/{deployment_id}"' in ran.group(1)
        assert "refs/heads/main" in ran.group(1) and COMMIT[:8] in ran.group(1)
        assert 'data-verdict="duplicate"' in log and 'data-verdict="filtered"' in log
        assert "feature/x" in log and secret not in log

        # The filters and the parameter map are edited on the hook's own form; the URL and the
        # secret stay.
        edit = await http.get(f"{hook_page}/edit")
        assert edit.status_code == 200 and "main\nrelease/*" in text_of(edit)
        assert 'value="head_commit.id"' in edit.text and 'name="provider"' not in edit.text
        kept = {"csrf_token": token, "branches": "main\nfeature/*", "map_name_0": "version"}
        refused_edit = await http.post(
            f"{hook_page}/edit", data={**kept, "map_path_0": "head_commit.id"}
        )
        assert refused_edit.status_code == 422 and 'id="e-events"' in refused_edit.text
        assert "main\nfeature/*" in text_of(refused_edit)
        saved = await http.post(
            f"{hook_page}/edit", data={**kept, "events": "push", "map_path_0": "head_commit.id"}
        )
        assert saved.status_code == 303, saved.text
        assert "main, feature/*" in text_of(await http.get(hook_page))
        other, other_headers = github_push("feature/x")
        widened = await client.post(
            f"/api/v1/hooks/{hook_id}", content=other, headers=signed(secret, other, other_headers)
        )
        assert widened.json()["verdict"] == "ran", widened.text

        # Disabled: a delivery is verified and logged, and runs nothing.
        assert (
            await http.post(f"{hook_page}/disable", data={"csrf_token": token})
        ).status_code == 303
        body, headers = github_push("main")
        off = await client.post(
            f"/api/v1/hooks/{hook_id}", content=body, headers=signed(secret, body, headers)
        )
        assert off.json() == {**off.json(), "verdict": "filtered", "deployment_id": None}
        assert "the hook is disabled" in text_of(await http.get(hook_page))
        assert (
            await http.post(f"{hook_page}/enable", data={"csrf_token": token})
        ).status_code == 303
        assert 'badge-muted">disabled' not in (await http.get(hook_page)).text

        rotated = await http.post(f"{hook_page}/rotate", data={"csrf_token": token})
        assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
        new_match = re.search(r'<code id="hook-secret">([^<]+)</code>', rotated.text)
        assert new_match
        new_secret = canary.remember(html.unescape(new_match.group(1)), "rotated secret (web)")
        assert new_secret != secret and "refused from now on" in rotated.text
        body, headers = github_push("main")
        stale = await client.post(
            f"/api/v1/hooks/{hook_id}", content=body, headers=signed(secret, body, headers)
        )
        assert stale.status_code == 401
        after = (await http.get(hook_page)).text
        assert new_secret not in after and secret not in after
        assert 'data-verdict="refused"' in after

    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        token = await csrf_token(http, hook_page)
        page = await http.get(hook_page)
        assert page.status_code == 200 and "Deliveries" in page.text
        assert "Rotate the secret" not in page.text and new_secret not in page.text
        assert (
            await http.post(f"{hook_page}/rotate", data={"csrf_token": token})
        ).status_code == 403
        assert (await http.get(new)).status_code == 403


async def test_webhook_registered_at_and_removed_from_github_from_its_page(
    git_sync: GitSyncBuilder, client: httpx.AsyncClient, admin: Account
) -> None:
    provider = await git_sync.connect("github", user="ada", repositories=1)
    await git_sync.synced(provider)
    (upstream,) = provider.upstream
    repository = (await api(client, admin, "GET", f"/repositories?provider_id={provider.id}"))[
        "items"
    ][0]
    template = await api(
        client,
        admin,
        "POST",
        "/templates",
        {"name": "from-github", "repository_id": repository["id"], "ref": "main"},
    )
    new = f"/templates/{template['id']}/webhooks/new"
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, new)
        created = await http.post(
            new, data={"csrf_token": token, "provider": "github", "events": ["push", "release"]}
        )
        assert created.status_code == 201, created.text
        secret_match = re.search(r'<code id="hook-secret">([^<]+)</code>', created.text)
        assert secret_match
        secret = canary.remember(html.unescape(secret_match.group(1)), "webhook secret (web)")
        hook_id = re.findall(r'href="/webhooks/([0-9a-f-]+)"', created.text)[0]
        hook_page = f"/webhooks/{hook_id}"
        page = await http.get(hook_page)
        assert "not registered by Shipyard" in page.text and "Register at the provider" in page.text

        registered = await http.post(f"{hook_page}/register", data={"csrf_token": token})
        assert registered.status_code == 200, registered.text
        (hook,) = provider.fake.forge.repo_hooks(upstream)
        assert hook["_secret"] == secret and hook["events"] == ["push", "release"]
        assert f"registered by Shipyard (hook id {hook['id']})" in registered.text
        assert "Remove from the provider" in registered.text and secret not in registered.text
        twice = await http.post(f"{hook_page}/register", data={"csrf_token": token})
        assert twice.status_code == 409 and "registered at the provider already" in twice.text

        removed = await http.post(f"{hook_page}/unregister", data={"csrf_token": token})
        assert removed.status_code == 200 and "Removed from the provider." in removed.text
        assert provider.fake.forge.repo_hooks(upstream) == []
        deleted = await http.post(
            f"{hook_page}/delete", data={"csrf_token": token, "template_id": template["id"]}
        )
        assert deleted.status_code == 303
        assert deleted.headers["location"] == f"/templates/{template['id']}"
        assert (await http.get(hook_page)).status_code == 404
