"""``shipyard cicd`` against a live Shipyard (uvicorn + worker) and the Jenkins fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from shipyard.cicd.cli import app
from shipyard.config import Settings
from tests.fakes.jenkins import FakeJenkins, Param, Script
from tests.fixtures.cicd import jenkins_body
from tests.support import canary
from tests.support.api import Account
from tests.support.browser import LiveServer, api_signup
from tests.support.cli_process import run_shipyard_json
from tests.support.postgres import PostgresForTests


@pytest.fixture(scope="module")
def live(postgres: PostgresForTests, test_settings: Settings) -> Iterator[LiveServer]:
    """One live server for the module (each test signs up its own tenant)."""
    settings = test_settings.model_copy(
        update={"cicd_poll_interval_seconds": 0.05, "cicd_retry_seconds": 2.0}
    )
    url = postgres.create_database()
    server = LiveServer(settings, url, with_worker=True).start()
    try:
        yield server
    finally:
        server.stop()
        postgres.drop_database(url)


async def _cli(live: LiveServer, account: Account | None, *args: str) -> Result:
    env = {"SHIPYARD_URL": live.url, "COLUMNS": "250"}
    env["SHIPYARD_TOKEN"] = account.token if account else ""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    canary.save_output("shipyard-cicd", result.stdout, result.stderr)
    return result


async def test_cli_lists_syncs_and_triggers_a_parameterised_job(
    live: LiveServer, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "team/app/deploy",
        params=[Param("ENV", "choice", choices=["staging", "production"]), Param("DRY", "boolean")],
        script=lambda params: Script(
            chunks=[f"deploying {params['ENV']}\n", "Finished: SUCCESS\n"]
        ),
    )
    jenkins_fake.add_job("team/lint")
    admin = await api_signup(live.url)
    async with httpx.AsyncClient(base_url=live.url) as http:
        created = await http.post(
            "/api/v1/cicd-providers",
            headers=admin.headers,
            json=jenkins_body(jenkins_fake, name="ci"),
        )
        assert created.status_code == 201

    providers = await _cli(live, admin, "providers")
    assert providers.exit_code == 0, providers.output
    assert (
        "ci" in providers.output
        and jenkins_fake.url in providers.output
        and "never" in providers.output
    )

    synced = await _cli(live, admin, "sync", "ci", "--wait", "--timeout", "30")
    assert synced.exit_code == 0, synced.output
    assert "sync of ci queued" in synced.output and "2 jobs" in synced.output

    jobs = await _cli(live, admin, "jobs", "--provider", "ci", "--search", "deploy")
    assert jobs.exit_code == 0, jobs.output
    assert "team/app/deploy" in jobs.output and "ENV:choice" in jobs.output
    assert "team/lint" not in jobs.output
    job_id = next(line.split()[1] for line in jobs.output.splitlines() if "team/app/deploy" in line)

    bad = await _cli(live, admin, "trigger", job_id, "--param", "ENV=mars")
    assert bad.exit_code == 1
    assert "parameter 'ENV' must be one of 'staging', 'production' (HTTP 422)" in bad.output

    ran = await _cli(
        live,
        admin,
        "trigger",
        job_id,
        "-p",
        "ENV=production",
        "-p",
        "DRY=true",
        "--wait",
        "--timeout",
        "60",
    )
    assert ran.exit_code == 0, ran.output
    assert "deployment " in ran.output
    assert f"success build #1 {jenkins_fake.url}/job/team/job/app/job/deploy/1/" in ran.output
    assert jenkins_fake.build("team/app/deploy", 1).params == {"ENV": "production", "DRY": "true"}


async def test_cli_reports_errors_clearly(live: LiveServer) -> None:
    missing = await _cli(live, None, "providers")
    assert missing.exit_code == 1
    assert "set SHIPYARD_TOKEN" in missing.output
    admin = await api_signup(live.url)
    unknown = await _cli(live, admin, "sync", "nope")
    assert unknown.exit_code == 1
    assert "no CI/CD provider named 'nope'" in unknown.output
    malformed = await _cli(
        live, admin, "trigger", "00000000-0000-0000-0000-000000000000", "-p", "novalue"
    )
    assert malformed.exit_code == 2
    assert "--param takes NAME=VALUE" in malformed.output
    gone = await _cli(live, admin, "trigger", "00000000-0000-0000-0000-000000000000")
    assert gone.exit_code == 1
    assert "CI/CD job 00000000-0000-0000-0000-000000000000 does not exist" in gone.output


async def test_cli_prints_json_and_takes_provider_names_and_job_paths(
    live: LiveServer, jenkins_fake: FakeJenkins
) -> None:
    jenkins_fake.add_job(
        "json/deploy",
        params=[Param("ENV", "choice", choices=["staging", "production"])],
        script=lambda params: Script(chunks=[f"to {params['ENV']}\n", "Finished: SUCCESS\n"]),
    )
    admin = await api_signup(live.url)
    async with httpx.AsyncClient(base_url=live.url) as http:
        created = await http.post(
            "/api/v1/cicd-providers",
            headers=admin.headers,
            json=jenkins_body(jenkins_fake, name="json-ci"),
        )
        assert created.status_code == 201
    provider_id = created.json()["id"]

    async def run(*args: str) -> tuple[int, Any, str]:
        return await run_shipyard_json(live.url, admin.token, "cicd", *args, label="shipyard-cicd")

    code, providers, _ = await run("providers")
    assert code == 0 and [(p["id"], p["name"]) for p in providers] == [(provider_id, "json-ci")]
    code, shown, _ = await run("show", "json-ci")
    assert code == 0 and shown["id"] == provider_id and shown["last_synced_at"] is None
    table = await _cli(live, admin, "show", provider_id)
    assert table.exit_code == 0 and "json-ci" in table.output and "never" in table.output
    code, synced, err = await run("sync", "json-ci", "--wait", "--timeout", "30")
    assert code == 0, err
    assert synced["sync"]["status"] == "queued" and synced["provider"]["job_count"] >= 1
    assert synced["provider"]["last_synced_at"] is not None
    code, jobs, _ = await run("jobs", "--provider", provider_id, "--search", "json/deploy")
    assert code == 0 and [job["path"] for job in jobs] == ["json/deploy"]
    assert jobs[0]["parameters"][0]["name"] == "ENV"

    code, ran, err = await run("trigger", "json/deploy", "-p", "ENV=staging", "--wait")
    assert code == 0, err
    assert ran["deployment"]["id"] and ran["step"]["status"] == "success"
    assert ran["step"]["build_number"] == "1"
    assert "success build #1" in err  # progress on stderr: stdout stays one document
    code, queued, _ = await run("trigger", jobs[0]["id"], "-p", "ENV=production")
    assert code == 0 and queued["step"] is None and queued["deployment"]["id"]
    code, _, err = await run("trigger", "json/nothing")
    assert code == 1 and "no CI/CD job named 'json/nothing'" in err
