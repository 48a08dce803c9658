"""``shipyard templates`` and ``shipyard run NAME --param ... --wait`` against a running server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WorkerControl
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_process import run_shipyard
from tests.support.git_server import GitFile
from tests.support.live_server import serve

SCRIPT = GitFile(
    "#!/bin/sh\n"
    'echo "version=$version args=$* password=$DB_PASSWORD"\n'
    'if [ "$FAIL" = "true" ]; then echo "failing on purpose"; exit 3; fi\n'
)


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def shipyard(
    base_url: str, token: str, *args: str, stdin: bytes | None = None
) -> tuple[int, str]:
    return await run_shipyard(base_url, token, *args, label="shipyard-run", stdin=stdin)


async def test_run_by_name_with_params_waits_and_exits_with_the_outcome(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    base_url: str,
    tmp_path: Path,
) -> None:
    secret = canary.remember("cli-param-secret-" + uuid.uuid4().hex, "secret template parameter")
    repo = await script_repo(admin, {"release.sh": SCRIPT})
    (host,) = await deploy_hosts(admin, 1)
    token = (
        await client.post("/api/v1/auth/tokens", headers=admin.headers, json={"name": "ci-bot"})
    ).json()["token"]
    definition = tmp_path / "template.json"
    definition.write_text(
        json.dumps(
            {
                "name": "cli release",
                "repository_id": repo.id,
                "scripts": [
                    {"script_id": repo.scripts["release.sh"], "arguments": ["v{{ version }}"]}
                ],
                "target": {"host_ids": [host["id"]]},
                "parameters": [
                    {"name": "version", "required": True},
                    {"name": "FAIL", "type": "boolean", "default": False},
                    {"name": "DB_PASSWORD", "type": "secret", "required": True},
                ],
            }
        )
    )
    code, output = await shipyard(base_url, token, "templates", "create", "--file", str(definition))
    assert code == 0, output

    code, output = await shipyard(
        base_url, token, "templates", "preview", "cli release", "--param", "version=1.2",
        "--param-stdin", "DB_PASSWORD", stdin=secret.encode() + b"\n",
    )  # fmt: skip
    assert code == 0, output
    assert "release.sh v1.2" in output and host["name"] in output

    # A secret on the command line is refused before anything is sent.
    code, output = await shipyard(
        base_url, token, "run", "cli release", "--param", "DB_PASSWORD=on-argv-1234"
    )
    assert code == 2 and "--param-stdin DB_PASSWORD" in output  # a usage error

    worker.start()
    # --ref: this run deploys the named commit (what a CI job passes).
    built = repo.hosted.head()
    code, output = await shipyard(
        base_url, token, "run", "cli release", "--param", "version=1.2", "--ref", built,
        "--param-stdin", "DB_PASSWORD", "--wait", stdin=secret.encode() + b"\n",
    )  # fmt: skip
    assert code == 0, output
    assert f"at commit {built[:12]}" in output
    assert "version=1.2 args=v1.2 password=***" in output
    assert secret not in output

    code, output = await shipyard(
        base_url, token, "run", "cli release", "--param", "version=1.3", "--param", "FAIL=yes",
        "--param-stdin", "DB_PASSWORD", "--wait", stdin=secret.encode() + b"\n",
    )  # fmt: skip
    assert code == 1, output
    assert "failing on purpose" in output

    code, output = await shipyard(base_url, token, "templates", "show", "cli release")
    assert code == 0, output
    runs = await client.get("/api/v1/deployments", headers=admin.headers)
    launched = [item for item in runs.json()["items"] if item["template_id"]]
    assert [item["parameters"]["version"] for item in launched] == ["1.3", "1.2"]
    assert {item["status"] for item in launched} == {"success", "failed"}
    for item in launched:
        assert item["launched_by"]["kind"] == "token"
        assert item["launched_by"]["name"] == "ci-bot"
        assert item["parameters"]["DB_PASSWORD"] == "***"
    assert secret not in runs.text
    code, output = await shipyard(base_url, token, "deploy", "show", launched[0]["id"])
    assert code == 0, output
    assert "launched by: token ci-bot" in output and '"DB_PASSWORD": "***"' in output

    # Roll back to the successful run: its values (the secret from its encrypted environment).
    succeeded = next(item for item in launched if item["status"] == "success")
    code, output = await shipyard(
        base_url, token, "templates", "rollback", "cli release", succeeded["id"], "--wait"
    )
    assert code == 0, output
    assert "version=1.2 args=v1.2 password=***" in output
    assert secret not in output
    code, output = await shipyard(
        base_url, token, "templates", "rollback", "cli release", launched[0]["id"]
    )
    assert code == 1 and "only a successful run" in output, output

    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"description": "released from the command line"}))
    code, output = await shipyard(
        base_url, token, "templates", "update", "cli release", "--file", str(patch)
    )
    assert code == 0, output
    found = await client.get(
        "/api/v1/templates", headers=admin.headers, params={"name": "cli release"}
    )
    assert found.json()["items"][0]["description"] == "released from the command line"
