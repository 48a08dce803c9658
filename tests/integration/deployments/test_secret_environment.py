"""Deployment environments: refused names and short secrets (422 naming the variable), a secret
across the executor's 64 KiB line cut stored masked, and stored refused names never run."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from shipyard.db import to_libpq_url
from tests.builders.deployments import DeployBuilder
from tests.support import canary
from tests.support.api import Account
from tests.support.git_server import GitFile

CUT = 64 * 1024
LONG_LINE = GitFile(
    "#!/bin/sh\n"
    "python3 -c 'import os, sys\n"
    't = os.environ["LONG_TOKEN"]\n'
    f'sys.stdout.write("a" * ({CUT} - len(t) // 2) + t + "b" * {6 * 1024} + "\\n")\'\n'
    'echo "done $LONG_TOKEN"\n'
)
REFUSED = [
    "BASH_ENV",
    "ENV",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_ANYTHING",
    "DYLD_INSERT_LIBRARIES",
    "PATH",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    "PROMPT_COMMAND",
    "PYTHONPATH",
    "PERL5OPT",
    "NODE_OPTIONS",
    "GIT_SSH_COMMAND",
    "SHIPYARD_HOST",
    "BASH_FUNC_ls",
    "PSModulePath",
    "ComSpec",
]


def body(environment: list[dict[str, Any]]) -> dict[str, Any]:
    # Validation of the body comes first, so made-up ids are never looked up.
    return {
        "name": "env check",
        "repository_id": str(uuid.uuid4()),
        "script_ids": [str(uuid.uuid4())],
        "host_ids": [str(uuid.uuid4())],
        "environment": environment,
    }


@pytest.mark.parametrize("name", REFUSED)
async def test_refused_names_are_a_422_naming_the_variable(
    client: httpx.AsyncClient, admin: Account, name: str
) -> None:
    payload = body([{"name": "APP_ENV", "value": "prod"}, {"name": name, "value": "$(id)"}])
    response = await client.post("/api/v1/deployments", headers=admin.headers, json=payload)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["errors"][0]["field"] == "environment.1.name"
    assert name in error["message"] and "not allowed" in error["message"]


async def test_secrets_too_short_to_mask_are_refused(
    client: httpx.AsyncClient, admin: Account
) -> None:
    for value in ["abc", "  ab  ", ""]:
        payload = body([{"name": "DB_PIN", "value": value, "secret": True}])
        response = await client.post("/api/v1/deployments", headers=admin.headers, json=payload)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["details"]["errors"][0]["field"] == "environment.0.value"
        assert "DB_PIN" in error["message"] and "too short to be masked" in error["message"]
        assert "input" not in str(error["details"])  # the value is not echoed back
    listed = await client.get("/api/v1/deployments", headers=admin.headers)
    assert listed.json()["items"] == []


async def test_a_secret_across_the_line_cut_is_stored_masked(
    deploy: DeployBuilder, database_url: str
) -> None:
    secret = canary.remember("cut-secret-" + uuid.uuid4().hex, "deployment secret variable")
    repo = await deploy.repo({"long.sh": LONG_LINE})
    hosts = await deploy.hosts(1)
    done = await deploy.run(
        repo,
        hosts,
        ("long.sh", []),
        environment=[{"name": "LONG_TOKEN", "value": secret, "secret": True}],
    )
    assert done["status"] == "success", done
    messages = await deploy.messages(done["id"])
    assert "done ***" in messages
    # The piece after the cut holds the mask, not the secret's second half (what came just
    # before the secret was held back with it until the secret was complete).
    assert any(re.fullmatch(r"a*\*\*\*b{6144}", message) for message in messages), [
        m[:60] for m in messages
    ]
    half = secret[len(secret) // 2 :]
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        stored = conn.execute(
            "SELECT string_agg(message, '\n') FROM deployment_logs UNION ALL "
            "SELECT string_agg(output, '\n') FROM deployment_scripts"
        ).fetchall()
    assert secret not in str(stored) and half not in str(stored)


async def test_a_stored_refused_name_is_refused_on_rerun_and_never_runs(
    deploy: DeployBuilder, database_url: str
) -> None:
    repo = await deploy.repo({"show.sh": GitFile('#!/bin/sh\necho "env=${BASH_ENV-unset}"\n')})
    hosts = await deploy.hosts(1)
    # Created before the rule existed: the refused name is written straight to the table.
    created = await deploy.create(
        deploy.body(repo, hosts, ("show.sh", []), environment=[{"name": "APP", "value": "x"}])
    )
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute(
            "UPDATE deployments SET environment = %s::jsonb WHERE id = %s",
            ('{"APP": "x", "BASH_ENV": "/tmp/evil"}', created["id"]),
        )
    deploy.worker.start()
    done = await deploy.wait(created["id"])
    assert done["status"] == "failed", done
    messages = await deploy.messages(done["id"])
    assert any("BASH_ENV is not allowed" in message for message in messages), messages
    assert not any(message.startswith("env=") for message in messages)
    rerun = await deploy.client.post(
        f"/api/v1/deployments/{created['id']}/rerun", headers=deploy.admin.headers
    )
    assert rerun.status_code == 422, rerun.text
    error = rerun.json()["error"]
    assert error["details"]["errors"][0]["field"] == "environment.1.name"
    assert "BASH_ENV" in error["message"]
