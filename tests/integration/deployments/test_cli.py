"""``shipyard deploy`` against a running server: create --wait, watch, list, show, cancel, rerun."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from typer.testing import CliRunner

from shipyard.config import Settings
from shipyard.db import Database
from shipyard.deployments.cli import app
from tests.fixtures.deployments import HostsFactory, ScriptRepoFactory, WorkerControl
from tests.integration.deployments.conftest import SCRIPTS
from tests.support import canary
from tests.support.api import Account
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


async def cli(base_url: str, token: str, *args: str) -> tuple[int, str]:
    """``shipyard deploy ARGS`` in-process, on a thread so this loop keeps serving the API.

    The command as a separate process (entry point, exit codes, one-line errors) is
    tests/integration/core/test_cli.py's subject; a child per call here cost a Python start-up.
    """
    env = {"SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": token, "COLUMNS": "200"}
    result = await asyncio.wait_for(
        asyncio.to_thread(CliRunner().invoke, app, list(args), env=env), timeout=120
    )
    canary.save_output("shipyard-deploy", result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a child would have died with this traceback
    return result.exit_code, result.output


async def test_create_wait_follows_the_log_and_exits_with_the_outcome(
    client: httpx.AsyncClient,
    admin: Account,
    script_repo: ScriptRepoFactory,
    deploy_hosts: HostsFactory,
    worker: WorkerControl,
    base_url: str,
) -> None:
    repo = await script_repo(admin, SCRIPTS)
    good = await deploy_hosts(admin, 1)
    bad = await deploy_hosts(admin, 1, name="bad-cli-host")
    token = (
        await client.post("/api/v1/auth/tokens", headers=admin.headers, json={"name": "cli"})
    ).json()["token"]
    worker.start()
    code, output = await cli(
        base_url,
        token,
        "create",
        "--name",
        "cli deploy",
        "--repository",
        repo.id,
        "--script",
        f"{repo.scripts['deploy.sh']}:one,two",
        "--host",
        good[0]["id"],
        "--env",
        "REGION=north",
        "--secret",
        "API_TOKEN=cli-secret-value",
        "--wait",
    )
    assert code == 0, output
    assert f"hello from {good[0]['name']} args=one two" in output
    assert "region=north" in output and "token=***" in output
    assert "cli-secret-value" not in output
    assert "success" in output
    code, output = await cli(
        base_url,
        token,
        "create",
        "--name",
        "mixed",
        "--repository",
        repo.id,
        "--script",
        repo.scripts["check.sh"],
        "--host",
        good[0]["id"],
        "--host",
        bad[0]["id"],
        "--wait",
    )
    assert code == 3, output  # partial
    assert "check failed on bad-cli-host" in output and "partial" in output

    listed_code, listed = await cli(base_url, token, "list")
    assert listed_code == 0 and "cli deploy" in listed and "mixed" in listed
    deployment_id = (await client.get("/api/v1/deployments?limit=1", headers=admin.headers)).json()[
        "items"
    ][0]["id"]
    show_code, shown = await cli(base_url, token, "show", deployment_id)
    assert show_code == 0 and "check.sh" in shown and "failed" in shown
    watch_code, watched = await cli(base_url, token, "watch", deployment_id)
    assert watch_code == 3 and "check failed on bad-cli-host" in watched
    rerun_code, rerun = await cli(base_url, token, "rerun", deployment_id, "--wait")
    assert rerun_code == 3 and "re-run of" in rerun


async def test_cli_errors_are_one_line_and_nonzero(
    client: httpx.AsyncClient, admin: Account, base_url: str
) -> None:
    token = (
        await client.post("/api/v1/auth/tokens", headers=admin.headers, json={"name": "cli"})
    ).json()["token"]
    code, output = await cli(base_url, token, "show", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "deployment not found (HTTP 404)" in output
    code, output = await cli(base_url, "shy_not_a_token", "list")
    assert code == 1 and "HTTP 401" in output
    code, output = await cli(base_url, token, "cancel", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and "not found" in output
