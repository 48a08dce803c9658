"""The wizard (branch asked once, scripts in the order picked, names at review) and the list's
launch columns and live progress, over HTTP. Nothing runs: no worker, no host contacted."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import event, update

from shipyard.db import Database
from shipyard.deployments.models import Deployment, DeploymentScript
from shipyard.templates.models import Template
from tests.fixtures.deployments import ScriptRepoFactory
from tests.support.api import Account
from tests.support.browser_http import browser_client, csrf_token
from tests.support.git_server import GitFile

FILES = {name: GitFile(f"#!/bin/sh\necho {name}\n") for name in ("a.sh", "b.sh", "c.sh")}
REF_QUESTION = "Branch, tag or commit"


async def _hosts(client: httpx.AsyncClient, account: Account, *names: str) -> dict[str, str]:
    """Hosts (never contacted) by name -> id."""
    found = {}
    for name in names:
        response = await client.post(
            "/api/v1/hosts",
            headers=account.headers,
            json={"name": name, "ip": "127.0.0.1", "port": 22, "user": "u", "password": "unused"},
        )
        assert response.status_code == 201, response.text
        found[name] = response.json()["id"]
    return found


def _order(html: str) -> list[str]:
    """The scripts of the run-order table, top to bottom."""
    table = html.split('id="script-order"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-script="([^"]+)">', table)


async def test_wizard_asks_the_branch_once_keeps_the_picked_order_and_names_it_at_review(
    client: httpx.AsyncClient, admin: Account, script_repo: ScriptRepoFactory
) -> None:
    repo = await script_repo(admin, FILES)
    ids = repo.scripts
    hosts = await _hosts(client, admin, "web-b", "web-a")
    async with browser_client(client, admin) as http:
        # The branch is asked on the scripts step only (where the branches are known).
        base = {"name": "Ordered", "repository_id": repo.id}
        pages = {
            "source": await http.get("/deployments/new", params=base),
            "scripts": await http.get("/deployments/new/scripts", params=base),
            "hosts": await http.get("/deployments/new/hosts", params=base),
            "options": await http.get("/deployments/new/options", params=base),
        }
        assert all(page.status_code == 200 for page in pages.values())
        asked = {step for step, page in pages.items() if 'name="ref"' in page.text}
        assert asked == {"scripts"}
        assert pages["scripts"].text.count(REF_QUESTION) == 1

        # Picked c, then a, then b: that is the order shown, numbered; b moves up once.
        picked = [("script_id", ids["c.sh"]), ("script_id", ids["a.sh"])]
        page = await http.get(
            "/deployments/new/scripts", params=[*base.items(), *picked, ("script_id", ids["b.sh"])]
        )
        assert _order(page.text) == ["c.sh", "a.sh", "b.sh"]
        assert re.search(r'<td class="position">1</td>.*?c\.sh', page.text, re.S)
        moved = await http.get(
            "/deployments/new/scripts",
            params=[
                *base.items(),
                *picked,
                ("script_id", ids["b.sh"]),
                ("move", f"up:{ids['b.sh']}"),
            ],
        )
        assert _order(moved.text) == ["c.sh", "b.sh", "a.sh"]
        # Each can move without JavaScript: submit buttons named for the script.
        assert 'aria-label="Move b.sh up"' in moved.text
        assert 'aria-label="Move a.sh down" disabled' in moved.text

        order = [("script_id", ids[name]) for name in ("c.sh", "b.sh", "a.sh")]
        state: list[tuple[str, Any]] = [
            *base.items(),
            *order,
            (f"args_{ids['b.sh']}", "--fast"),
            ("host_id", hosts["web-b"]),
            ("host_id", hosts["web-a"]),
            ("schedule", "later"),
            (
                "scheduled_local",
                (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            ),
            ("tz_offset", "0"),
        ]
        review = (await http.get("/deployments/new/review", params=state)).text
        listed = review.split('id="summary-scripts"', 1)[1].split("</ol>", 1)[0]
        assert re.findall(r"<code>([^<]+)</code>", listed) == ["c.sh", "b.sh", "a.sh"]
        assert "--fast" in listed
        hosts_text = review.split('id="summary-hosts"', 1)[1].split("</dd>", 1)[0]
        assert hosts_text.index("web-a") < hosts_text.index("web-b")
        assert not any(
            host_id in review.split('id="summary"', 1)[1].split("</dl>")[0]
            for host_id in hosts.values()
        )

        # "Save as template" is offered last; its page carries the same choices.
        offer = re.search(r'href="(/templates/from-wizard\?[^"]+)"', review)
        assert offer and review.index('action="/deployments/new"') < offer.start()
        save = await http.get(offer.group(1).replace("&amp;", "&"))
        assert save.status_code == 200 and ids["b.sh"] in save.text

        token = await csrf_token(http)
        form: dict[str, list[str]] = {"csrf_token": [token]}
        for key, value in state:
            form.setdefault(key, []).append(value)
        created = await http.post("/deployments/new", data=form)
        assert created.status_code == 303, created.text
        deployment_id = created.headers["location"].rsplit("/", 1)[1]
    read = await client.get(f"/api/v1/deployments/{deployment_id}", headers=admin.headers)
    assert read.status_code == 200, read.text
    body = read.json()
    # The run's scripts are in the picked order (the worker makes its rows by this position).
    assert body["script_ids"] == [ids[n] for n in ("c.sh", "b.sh", "a.sh")]


async def test_wizard_targets_a_group_and_tag_and_records_a_manual_run(
    client: httpx.AsyncClient, admin: Account, script_repo: ScriptRepoFactory
) -> None:
    repo = await script_repo(admin, FILES)
    hosts = {}
    for name, tags in (("app-1", ["web"]), ("app-2", ["db"]), ("edge-1", ["web"])):
        created = await client.post(
            "/api/v1/hosts",
            headers=admin.headers,
            json={
                "name": name,
                "ip": "127.0.0.1",
                "port": 22,
                "user": "u",
                "password": "unused",
                "tags": tags,
            },
        )
        assert created.status_code == 201, created.text
        hosts[name] = created.json()["id"]
    group = await client.post(
        "/api/v1/host-groups",
        headers=admin.headers,
        json={"name": "prod", "host_ids": [hosts["app-1"], hosts["app-2"]]},
    )
    assert group.status_code == 201, group.text
    group_id = group.json()["id"]
    base = {"name": "By rule", "repository_id": repo.id, "script_id": repo.scripts["a.sh"]}
    async with browser_client(client, admin) as http:
        step = (await http.get("/deployments/new/hosts", params=base)).text
        assert f'name="group_id" value="{group_id}"' in step and "prod" in step
        assert '<option value="web">' in step and '<option value="db">' in step

        state = {**base, "group_id": group_id, "tags": "web"}
        review = (await http.get("/deployments/new/review", params=state)).text
        target = review.split('id="summary-target"', 1)[1].split("</dd>", 1)[0]
        assert "group prod and tag web" in target
        shown = review.split('id="summary-hosts"', 1)[1].split("</dd>", 1)[0]
        assert "app-1" in shown and "app-2" not in shown and "edge-1" not in shown

        token = await csrf_token(http)
        created = await http.post("/deployments/new", data={"csrf_token": token, **state})
        assert created.status_code == 303, created.text
        deployment_id = created.headers["location"].rsplit("/", 1)[1]
        page = (await http.get(f"/deployments/{deployment_id}")).text
        assert "group prod and tag web" in page
    read = (await client.get(f"/api/v1/deployments/{deployment_id}", headers=admin.headers)).json()
    assert read["target"]["group_ids"] == [group_id] and read["target"]["tags"] == ["web"]
    assert read["trigger"] == "manual"
    assert read["launched_by"]["kind"] == "user" and read["launched_by"]["name"]


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on ``db`` while inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_list_shows_launch_columns_and_live_progress_in_few_queries(
    client: httpx.AsyncClient, db: Database, admin: Account
) -> None:
    hosts = await _hosts(client, admin, "n1", "n2", "n3")
    host_ids = [UUID(h) for h in hosts.values()]
    group = await client.post(
        "/api/v1/host-groups",
        headers=admin.headers,
        json={"name": "prod", "host_ids": list(hosts.values())},
    )
    assert group.status_code == 201, group.text
    tenant = UUID(admin.tenant_id)
    base = datetime.now(UTC) - timedelta(hours=1)
    async with db.session(tenant_id=tenant) as session:
        template = Template(tenant_id=tenant, name="Nightly release")
        session.add(template)
        await session.flush()
        old = Deployment(
            name="older run",
            status="success",
            created_by=UUID(admin.user_id),
            created_at=base,
        )
        running = Deployment(
            name="fleet run",
            status="in_progress",
            ref="main",
            commit_sha="0123456789abcdef0123456789abcdef01234567",
            trigger="api",
            template_id=template.id,
            launched_by={"kind": "token", "id": str(uuid.uuid4()), "name": "ci-bot"},
            parameters={"version": "1.2", "password": "***"},
            target={"host_ids": [], "group_ids": [group.json()["id"]], "tags": ["web"]},
            host_ids=host_ids,
            created_at=base + timedelta(minutes=1),
        )
        session.add_all([old, running])
        await session.flush()
        # n1 finished both scripts, n2 is half-way, n3 has not started: 1 of 3 hosts.
        statuses = {
            host_ids[0]: ("success", "failed"),
            host_ids[1]: ("success", "running"),
            host_ids[2]: ("pending", "pending"),
        }
        for host_id, pair in statuses.items():
            for position, status in enumerate(pair):
                session.add(
                    DeploymentScript(
                        deployment_id=running.id,
                        host_id=host_id,
                        position=position,
                        status=status,
                        path="x.sh",
                    )
                )
        # More unfinished runs: the page's query count must not grow with them.
        for index in range(15):
            session.add(
                Deployment(
                    name=f"queued {index}",
                    status="in_progress",
                    host_ids=host_ids,
                    created_at=base - timedelta(minutes=index),
                )
            )
        running_id, template_id = running.id, template.id

    async with browser_client(client, admin) as http:
        await http.get("/deployments")  # warm: the session lookup etc. are not the list's
        with _statements(db) as statements:
            page = await http.get("/deployments")
        assert page.status_code == 200
        assert len(statements) < 15, statements

        html = page.text
        row = html.split('data-deployment="fleet run"', 1)[1].split("</tr>", 1)[0]
        assert "1/3 hosts" in row
        assert f'href="/templates/{template_id}">Nightly release</a>' in row
        assert "main" in row and ">0123456<" in row
        assert '<td class="trigger">api</td>' in row
        assert "ci-bot" in row and "(token)" in row
        older = html.split('data-deployment="older run"', 1)[1].split("</tr>", 1)[0]
        assert admin.email in older  # rows from before launched_by: the creator's e-mail
        assert 'hx-trigger="every 2s"' in html  # live while a run is

        # The rows refresh alone (HTMX): the new count shows without a reload.
        async with db.session(tenant_id=tenant) as session:
            await session.execute(
                update(DeploymentScript)
                .where(DeploymentScript.deployment_id == running_id)
                .where(DeploymentScript.status == "running")
                .values(status="success")
            )
        rows = await http.get("/deployments", headers={"HX-Request": "true"})
        assert rows.status_code == 200 and "<html" not in rows.text
        fleet = rows.text.split('data-deployment="fleet run"', 1)[1].split("</tr>", 1)[0]
        assert "2/3 hosts" in fleet

        # The run's page: template, trigger, launcher, parameters (secret masked), rule, hosts.
        detail = (await http.get(f"/deployments/{running_id}")).text
        facts = detail.split("<h2>Details</h2>", 1)[1].split("</dl>", 1)[0]
        assert "Nightly release" in facts and "ci-bot" in facts
        assert re.search(r'id="detail-trigger">api<', facts)
        assert "<code>password</code> = ***" in facts and "<code>version</code> = 1.2" in facts
        assert "group prod and tag web" in facts
        assert re.search(r'id="detail-hosts">3: n1, n2, n3<', facts)
