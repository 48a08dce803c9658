"""Template pages over HTTP: the list, the edit form (scripts in order, target, environment with
write-only secrets, parameters), the launch form built from the parameters, preview, launch,
runs and roll back, roles, and "Save as template" from the wizard."""

from __future__ import annotations

import html
import json
import re
import uuid
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from shipyard.db import Database
from shipyard.templates.models import Template
from tests.builders.deployments import DeployBuilder
from tests.fixtures.deployments import ScriptRepo
from tests.support import canary
from tests.support.api import Account, add_member
from tests.support.browser_http import browser_client, csrf_token
from tests.support.git_server import GitFile

SCRIPTS = {
    "build.sh": GitFile('#!/bin/sh\necho "build $*"\n', executable=True),
    "ship.sh": GitFile('#!/bin/sh\necho "ship $* count=$COUNT"\n', executable=True),
}


def text_of(page: httpx.Response) -> str:
    """The page's HTML with entities decoded (names and messages are escaped in it)."""
    return html.unescape(page.text)


async def api(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None
) -> Any:
    response = await client.request(method, f"/api/v1{path}", headers=account.headers, json=body)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def kinds(page: str) -> dict[str, str]:
    """The hidden fields naming each parameter's type, sent with the launch form."""
    return dict(re.findall(r'<input type="hidden" name="(kind\.[^"]+)" value="([^"]+)">', page))


def script_rows(page: str) -> dict[str, int]:
    """Script path → the row index the edit form gave it."""
    rows = re.findall(r'name="script_label_(\d+)" value="([^"]+)"', page)
    return {label: int(index) for index, label in rows}


async def stored_secrets(db: Database, admin: Account, template_id: str) -> dict[str, str]:
    async with db.session(tenant_id=UUID(admin.tenant_id)) as session:
        template = await session.scalar(select(Template).where(Template.id == UUID(template_id)))
        assert template is not None
        return dict(json.loads(template.secret_environment or "{}"))


async def test_create_edit_with_field_errors_and_viewer_read_only(
    deploy: DeployBuilder, db: Database
) -> None:
    client, admin = deploy.client, deploy.admin
    secret = canary.remember("tmpl-env-secret-" + uuid.uuid4().hex, "template env secret")
    repo = await deploy.repo(SCRIPTS)
    (host,) = await deploy.hosts(1)
    group = await api(client, admin, "POST", "/host-groups", {"name": "prod"})
    async with browser_client(client, admin) as http:
        token = await csrf_token(http, "/templates/new")
        # "Show the scripts" re-renders the form with the repository's catalogue (and says so
        # when no repository is chosen yet), keeping what was typed.
        early = await http.post(
            "/templates/new", data={"csrf_token": token, "action": "scripts", "name": "early"}
        )
        assert early.status_code == 200 and "Choose a repository first" in early.text
        assert 'value="early"' in early.text
        shown = await http.post(
            "/templates/new",
            data={"csrf_token": token, "action": "scripts", "repository_id": repo.id},
        )
        assert shown.status_code == 200, shown.text
        rows = script_rows(shown.text)
        assert set(rows) == {"build.sh", "ship.sh"}
        ship, build = rows["ship.sh"], rows["build.sh"]
        form = {
            "csrf_token": token,
            "action": "save",
            "name": "release",
            "description": "ship a version",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "variables_form": "1",
            # ship.sh is listed first but numbered 2: build.sh runs first.
            f"script_id_{ship}": repo.scripts["ship.sh"],
            f"script_label_{ship}": "ship.sh",
            f"script_run_{ship}": "1",
            f"script_order_{ship}": "2",
            f"script_args_{ship}": "--version={{ version }} 'two words'",
            f"script_id_{build}": repo.scripts["build.sh"],
            f"script_label_{build}": "build.sh",
            f"script_run_{build}": "1",
            f"script_order_{build}": "1",
            f"script_args_{build}": "",
            "host_ids": host["id"],
            "group_ids": group["id"],
            "tags": "web",
            "parallelism": "5",
            "stop_on_failure": "1",
            "var_name_0": "REGION",
            "var_value_0": "eu",
            "var_name_1": "TOKEN",
            "var_value_1": secret,
            "var_secret_1": "1",
            "param_name_0": "version",
            "param_type_0": "string",
            "param_required_0": "1",
            "param_pattern_0": "[0-9.]+",
            "param_name_1": "COUNT",
            "param_type_1": "integer",
            "param_default_1": "2",
            "param_min_1": "1",
            "param_max_1": "5",
            "param_name_2": "",
        }
        created = await http.post("/templates/new", data=form)
        assert created.status_code == 303, created.text
        template_id = created.headers["location"].rsplit("/", 1)[1]
        stored = await api(client, admin, "GET", f"/templates/{template_id}")
        assert [s["script_id"] for s in stored["scripts"]] == [
            repo.scripts["build.sh"],
            repo.scripts["ship.sh"],
        ]
        assert stored["scripts"][1]["arguments"] == ["--version={{ version }}", "two words"]
        assert stored["target"] == {
            "host_ids": [host["id"]],
            "group_ids": [group["id"]],
            "tags": ["web"],
        }
        assert stored["options"]["parallelism"] == 5 and stored["options"]["stop_on_failure"]
        assert [(p["name"], p["type"], p["default"]) for p in stored["parameters"]] == [
            ("version", "string", None),
            ("COUNT", "integer", 2),
        ]
        assert await stored_secrets(db, admin, template_id) == {"TOKEN": secret}

        listed = text_of(await http.get("/templates"))
        assert "release" in listed and repo.hosted.default_branch in listed
        assert "1 host plus hosts in group prod tagged web" in listed and "never run" in listed

        page = text_of(await http.get(f"/templates/{template_id}"))
        assert secret not in page
        assert f"{host['name']} plus hosts in group prod tagged web" in page
        # Scripts are listed in run order by id; their paths are swapped in after the page.
        assert page.index(repo.scripts["build.sh"]) < page.index(repo.scripts["ship.sh"])
        loader = re.search(r'hx-get="(/templates/script-names\?[^"]+)"', page)
        assert loader
        names = await http.get(loader.group(1))
        assert names.status_code == 200, names.text
        for path, script_id in repo.scripts.items():
            assert (
                f'<code id="script-name-{script_id}" hx-swap-oob="true">{path}</code>' in names.text
            )
        edit = await http.get(f"/templates/{template_id}/edit")
        assert edit.status_code == 200 and secret not in edit.text
        assert "stored — type to replace" in text_of(edit)

        # A secret parameter inside arguments: a 422 naming the script's arguments, the form
        # as typed. The secret left blank is kept.
        # The stored scripts, in run order (named by id until the catalogue's paths load).
        by_id = {script_id: path for path, script_id in repo.scripts.items()}
        edit_rows = {by_id[label]: index for label, index in script_rows(edit.text).items()}
        assert edit_rows == {"build.sh": 0, "ship.sh": 1}
        resend = {
            key: value for key, value in form.items() if not key.startswith(("script_", "var_"))
        }
        for path, index in edit_rows.items():
            resend[f"script_id_{index}"] = repo.scripts[path]
            resend[f"script_label_{index}"] = path
            resend[f"script_run_{index}"] = "1"
            resend[f"script_order_{index}"] = str(index + 1)
        resend |= {
            "var_name_0": "REGION",
            "var_value_0": "us",
            "var_name_1": "TOKEN",
            "var_value_1": "",
            "var_secret_1": "1",
            "param_name_2": "DB_PASSWORD",
            "param_type_2": "secret",
            f"script_args_{edit_rows['ship.sh']}": "--password={{ DB_PASSWORD }}",
            "description": "typed just now",
        }
        refused = await http.post(f"/templates/{template_id}/edit", data=resend)
        assert refused.status_code == 422, refused.text
        assert f"scripts.{edit_rows['ship.sh']}.arguments" in refused.text
        assert "typed just now" in refused.text and secret not in refused.text
        bad_name = await http.post(
            f"/templates/{template_id}/edit",
            data={
                **resend,
                "param_name_2": "LD_PRELOAD",
                f"script_args_{edit_rows['ship.sh']}": "",
            },
        )
        assert bad_name.status_code == 422 and "parameters.2.name" in bad_name.text
        no_name = await http.post(f"/templates/{template_id}/edit", data={**resend, "name": ""})
        assert no_name.status_code == 422
        assert 'aria-describedby="e-name"' in no_name.text
        taken = await http.post("/templates/new", data=form)
        assert taken.status_code == 409 and "already exists" in taken.text
        saved = await http.post(
            f"/templates/{template_id}/edit",
            data={**resend, f"script_args_{edit_rows['ship.sh']}": "--fast"},
        )
        assert saved.status_code == 303, saved.text
        assert await stored_secrets(db, admin, template_id) == {"TOKEN": secret}
        again = await api(client, admin, "GET", f"/templates/{template_id}")
        assert again["description"] == "typed just now"
        assert [p["name"] for p in again["parameters"]] == ["version", "COUNT", "DB_PASSWORD"]

    viewer = await add_member(client, admin, "viewer")
    async with browser_client(client, viewer) as http:
        listed = text_of(await http.get("/templates"))
        assert "release" in listed and "New template" not in listed
        page = text_of(await http.get(f"/templates/{template_id}"))
        assert "Definition" in page and f"/templates/{template_id}/edit" not in page
        assert 'id="launch-form"' not in page
        assert (await http.get("/templates/new")).status_code == 403
        assert (await http.get(f"/templates/{template_id}/edit")).status_code == 403


async def _launchable(deploy: DeployBuilder, repo: ScriptRepo, host: dict[str, Any]) -> str:
    created = await api(
        deploy.client,
        deploy.admin,
        "POST",
        "/templates",
        {
            "name": "nightly",
            "repository_id": repo.id,
            "ref": repo.hosted.default_branch,
            "scripts": [
                {"script_id": repo.scripts["build.sh"], "arguments": []},
                {"script_id": repo.scripts["ship.sh"], "arguments": ["--v={{ version }}"]},
            ],
            "target": {"host_ids": [host["id"]]},
            "parameters": [
                {"name": "version", "type": "string", "required": True, "description": "semver"},
                {"name": "COUNT", "type": "integer", "default": 2, "min": 1, "max": 5},
                {"name": "notes", "type": "text"},
                {"name": "DRY_RUN", "type": "boolean", "default": True},
                {"name": "stage", "type": "choice", "choices": ["eu", "us"], "default": "us"},
                {"name": "parts", "type": "multi_choice", "choices": ["a", "b", "c"]},
                {"name": "API_KEY", "type": "secret"},
            ],
        },
    )
    return str(created["id"])


async def test_launch_form_preview_launch_runs_and_roll_back(deploy: DeployBuilder) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo(SCRIPTS)
    (host,) = await deploy.hosts(1)
    template_id = await _launchable(deploy, repo, host)
    first_commit = repo.hosted.head()
    async with browser_client(client, admin) as http:
        page = (await http.get(f"/templates/{template_id}")).text
        # One input per parameter, by type, with its default and rules.
        assert re.search(r'<input id="f-param-version" name="param.version"[^>]* required', page)
        assert re.search(
            r'<input id="f-param-COUNT" name="param.COUNT" type="number" step="1" value="2" '
            r'min="1" max="5"',
            page,
        )
        assert '<textarea id="f-param-notes" name="param.notes"' in page
        assert re.search(
            r'type="checkbox" id="f-param-DRY_RUN" name="param.DRY_RUN" value="1" checked', page
        )
        assert re.search(r'<select id="f-param-stage" name="param.stage"', page)
        assert '<option value="us" selected>' in page
        assert page.count('name="param.parts"') == 3
        assert re.search(r'name="param.API_KEY" type="password"', page)
        token = await csrf_token(http, f"/templates/{template_id}")

        # A value out of range: a 422 naming the parameter, the other values kept.
        typed = {
            "csrf_token": token,
            **kinds(page),
            "param.version": "1.4",
            "param.COUNT": "9",
            "param.stage": "eu",
        }
        refused = await http.post(f"/templates/{template_id}/preview", data=typed)
        assert refused.status_code == 422, refused.text
        assert 'id="e-param-COUNT"' in refused.text and "at most 5" in refused.text
        assert 'value="1.4"' in refused.text and '<option value="eu" selected>' in refused.text
        missing = await http.post(
            f"/templates/{template_id}/launch", data={"csrf_token": token, **kinds(page)}
        )
        assert missing.status_code == 422 and 'id="e-param-version"' in missing.text

        # Preview: the commit, the scripts in order with the value in place, the host.
        good = {**typed, "param.COUNT": "3", "param.parts": ["a", "c"]}
        preview = await http.post(f"/templates/{template_id}/preview", data=good)
        assert preview.status_code == 200, preview.text
        shown = text_of(preview)
        assert f'<code id="preview-commit">{first_commit}</code>' in shown
        assert re.search(r"build\.sh.*ship\.sh</code> <code>--v=1\.4</code>", shown, re.S)
        assert host["name"] in shown.split('id="preview-hosts"')[1]

        deploy.worker.start()
        launched = await http.post(f"/templates/{template_id}/launch", data=good)
        assert launched.status_code == 303, launched.text
        first_id = launched.headers["location"].rsplit("/", 1)[1]
        first = await deploy.wait(first_id)
        assert first["status"] == "success", first
        assert first["trigger"] == "manual" and first["template_id"] == template_id
        assert first["parameters"]["parts"] == ["a", "c"] and first["commit_sha"] == first_commit

        repo.hosted.commit({"build.sh": GitFile('#!/bin/sh\necho "build v2"\n', executable=True)})
        second = await http.post(f"/templates/{template_id}/launch", data=good)
        second_run = await deploy.wait(second.headers["location"].rsplit("/", 1)[1])
        assert second_run["status"] == "success" and second_run["commit_sha"] != first_commit

        listed = text_of(await http.get("/templates"))
        assert f"<code>{second_run['commit_sha'][:8]}</code>" in listed
        runs = text_of(await http.get(f"/templates/{template_id}"))
        assert f'<code id="last-success-commit">{second_run["commit_sha"]}</code>' in runs
        history = runs.split('id="template-runs"')[1]
        assert first_commit[:8] in history and "manual" in history and admin.email in history
        # Roll back is offered on the earlier successful run only, after a confirm step.
        assert history.count("Roll back to this") == 1
        confirm_url = f"/templates/{template_id}/rollback/{first_id}"
        assert confirm_url in history
        confirm = text_of(await http.get(confirm_url))
        assert f'<code id="rollback-commit">{first_commit}</code>' in confirm
        rolled = await http.post(confirm_url, data={"csrf_token": token})
        assert rolled.status_code == 303, rolled.text
        back = await deploy.wait(rolled.headers["location"].rsplit("/", 1)[1])
        assert back["status"] == "success" and back["commit_sha"] == first_commit

    # Admin-only: a developer sees the template but no launch form, and a launch is refused.
    await api(client, admin, "PATCH", f"/templates/{template_id}", {"admin_only": True})
    developer = await add_member(client, admin, "developer")
    async with browser_client(client, developer) as http:
        page = text_of(await http.get(f"/templates/{template_id}"))
        assert "Only admins may launch this template." in page
        assert 'id="launch-form"' not in page and "Roll back to this" not in page
        token = await csrf_token(http, f"/templates/{template_id}")
        refused = await http.post(
            f"/templates/{template_id}/launch",
            data={"csrf_token": token, "kind.version": "string", "param.version": "1"},
        )
        assert refused.status_code == 403
        assert "admin only" in text_of(await http.get("/templates"))


async def test_save_as_template_from_the_wizard(deploy: DeployBuilder) -> None:
    client, admin = deploy.client, deploy.admin
    repo = await deploy.repo(SCRIPTS)
    (host,) = await deploy.hosts(1)
    ship, build = repo.scripts["ship.sh"], repo.scripts["build.sh"]
    state = [
        ("name", "Friday release"),
        ("repository_id", repo.id),
        ("script_id", ship),
        ("script_id", build),
        (f"args_{ship}", "--fast"),
        ("host_id", host["id"]),
        ("tags", "web"),
        ("parallelism", "3"),
    ]
    async with browser_client(client, admin) as http:
        page = await http.get("/templates/from-wizard", params=state)
        assert page.status_code == 200, page.text
        assert 'value="Friday release"' in page.text
        token = await csrf_token(http, "/templates/from-wizard?name=x")
        form: dict[str, Any] = {"csrf_token": token, "template_name": ""}
        for key, value in state:
            form.setdefault(key, []).append(value)
        empty = await http.post("/templates/from-wizard", data=form)
        assert empty.status_code == 422 and 'id="e-template_name"' in empty.text
        saved = await http.post("/templates/from-wizard", data={**form, "template_name": "friday"})
        assert saved.status_code == 303, saved.text
        template_id = saved.headers["location"].rsplit("/", 1)[1]
    stored = await api(client, admin, "GET", f"/templates/{template_id}")
    assert stored["name"] == "friday" and stored["repository_id"] == repo.id
    assert [(s["script_id"], s["arguments"]) for s in stored["scripts"]] == [
        (ship, ["--fast"]),
        (build, []),
    ]
    # The hosts picked plus the rule (any host tagged web), resolved at each launch.
    assert stored["target"] == {"host_ids": [host["id"]], "group_ids": [], "tags": ["web"]}
    assert stored["options"]["parallelism"] == 3
