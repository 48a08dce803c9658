"""``shipyard templates ...`` and ``shipyard run`` with ``-o json``: every command's output parsed
(the API's field names), templates by name, a missing name an error."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WorkerControl
from tests.integration.deployments.test_cli_json import split_stream
from tests.support.api import Account
from tests.support.cli_process import run_shipyard_json, run_shipyard_ndjson
from tests.support.git_server import GitFile
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def test_templates_commands_in_json_by_name(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    base_url: str,
    tmp_path: Path,
) -> None:
    repo = await script_repo(admin, {"release.sh": GitFile('#!/bin/sh\necho "release $*"\n')})
    (host,) = await deploy_hosts(admin, 1)
    name = "json release " + uuid.uuid4().hex[:6]

    async def json_of(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(base_url, admin.token, *args, label="templates-json")

    definition = tmp_path / "template.json"
    definition.write_text(
        json.dumps(
            {
                "name": name,
                "repository_id": repo.id,
                "scripts": [
                    {"script_id": repo.scripts["release.sh"], "arguments": ["v{{ version }}"]}
                ],
                "target": {"host_ids": [host["id"]]},
                "parameters": [{"name": "version", "required": True}],
            }
        )
    )
    code, created, err = await json_of("templates", "create", "--file", str(definition))
    assert code == 0, err
    assert created["name"] == name and created["repository_id"] == repo.id
    assert [p["name"] for p in created["parameters"]] == ["version"]

    code, listed, err = await json_of("templates", "list")
    assert code == 0 and [item["id"] for item in listed] == [created["id"]], err

    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"description": "from -o json"}))
    code, changed, err = await json_of("templates", "update", name, "--file", str(patch))
    assert code == 0, err
    assert changed["id"] == created["id"] and changed["description"] == "from -o json"

    code, preview, err = await json_of("templates", "preview", name, "--param", "version=2")
    assert code == 0, err
    assert [s["arguments"] for s in preview["scripts"]] == [["v2"]]
    assert [h["name"] for h in preview["hosts"]] == [host["name"]]
    assert preview["commit_sha"]

    worker.start()
    code, events, err = await run_shipyard_ndjson(
        base_url, admin.token, "run", name, "--param", "version=2", "--wait", label="run-json"
    )
    assert code == 0, err
    lines, summary = split_stream(events)
    first = summary["deployment"]
    assert first["template_id"] == created["id"] and first["status"] == "success"
    assert first["parameters"] == {"version": "2"}
    assert "release v2" in [line["message"] for line in lines]

    code, launched, err = await json_of("templates", "launch", name, "--param", "version=3")
    assert code == 0, err
    assert launched["template_id"] == created["id"] and launched["parameters"] == {"version": "3"}

    code, shown, err = await json_of("templates", "show", name)
    assert code == 0, err
    assert shown["template"]["id"] == created["id"]
    assert [run["id"] for run in shown["runs"]] == [launched["id"], first["id"]]
    code, runs, err = await json_of("templates", "history", name, "--limit", "1")
    assert code == 0 and [run["id"] for run in runs] == [launched["id"]], err

    code, rolled, err = await json_of("templates", "rollback", name, first["id"])
    assert code == 0, err
    assert rolled["commit_sha"] == first["commit_sha"] and rolled["parameters"] == {"version": "2"}

    code, deleted, err = await json_of("templates", "delete", created["id"])
    assert code == 0 and deleted["id"] == created["id"] and deleted["name"] == name, err
    code, output, err = await json_of("templates", "show", name)
    assert code == 1 and output is None, err
    assert err.strip() == f"error: no template named {name!r}"
    code, output, err = await json_of("run", "no such template")
    assert code == 1 and "no template named 'no such template'" in err, err
