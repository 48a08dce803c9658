"""``shipyard deploy logs`` and ``deploy watch`` with the web's filters (--host, --script,
--failed, --grep), colours kept with --color and stripped otherwise, stderr marked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from shipyard.config import Settings
from shipyard.db import Database
from tests.support.api import Account
from tests.support.cli_process import run_shipyard
from tests.support.grid_seed import GridRun, Line, seed_grid_run
from tests.support.live_server import serve

LINES: list[Line] = [
    (None, None, None, "INFO", "deployment started on 2 hosts"),
    ("web-1", "deploy.sh", "stdout", "INFO", "pulling release 42"),
    ("web-1", "deploy.sh", "stderr", "INFO", "warning: cache is cold"),
    ("web-1", "deploy.sh", "stdout", "INFO", "download 10%\rdownload 50%\rdownload 100%"),
    ("web-2", "deploy.sh", "stdout", "INFO", "pulling release 42\x1b]0;pwned\x07\x1b[2J"),
    ("web-2", "check.sh", "stdout", "INFO", "\x1b[31mcheck failed: disk 97% full\x1b[0m"),
    ("web-2", "check.sh", None, "ERROR", "check.sh exited with code 3"),
    ("web-1", "check.sh", "stdout", "INFO", "check ok"),
]


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


@pytest.fixture
async def token(client: httpx.AsyncClient, admin: Account) -> str:
    response = await client.post(
        "/api/v1/auth/tokens", headers=admin.headers, json={"name": "cli logs"}
    )
    assert response.status_code == 201, response.text
    value: str = response.json()["token"]
    return value


@pytest.fixture
async def run(db: Database, admin: Account) -> GridRun:
    return await seed_grid_run(
        db, admin, outcomes={("web-2", "check.sh"): ("failed", 3)}, lines=LINES
    )


def messages(output: str) -> list[str]:
    """What follows the time of each log line (``HH:MM:SS ``)."""
    return [line[9:] for line in output.splitlines() if line[:2].isdigit() and line[2] == ":"]


async def test_logs_prints_every_line_plain_when_not_a_terminal(
    base_url: str, token: str, run: GridRun
) -> None:
    code, output = await run_shipyard(
        base_url, token, "deploy", "logs", str(run.deployment_id), label="deploy-logs"
    )
    assert code == 0, output
    assert "\x1b" not in output and "\x07" not in output
    assert messages(output) == [
        "[INFO] deployment started on 2 hosts",
        "web-1 pulling release 42",
        "web-1 [stderr] warning: cache is cold",
        "web-1 download 100%",
        "web-2 pulling release 42",
        "web-2 check failed: disk 97% full",
        "web-2 [ERROR] check.sh exited with code 3",
        "web-1 check ok",
    ]


async def test_logs_colours_with_color_and_filters_as_the_web(
    base_url: str, token: str, run: GridRun
) -> None:
    deployment = str(run.deployment_id)

    async def logs(*args: str) -> list[str]:
        code, output = await run_shipyard(
            base_url, token, "deploy", "logs", deployment, *args, label="deploy-logs"
        )
        assert code == 0, output
        return output.splitlines()

    coloured = "\n".join(await logs("--color"))
    assert "\x1b[31mcheck failed: disk 97% full\x1b[0m" in coloured  # the script's own colour
    # stderr is marked and coloured (its colour is log_format's to choose), never red.
    assert re.search(r"\x1b\[[0-9;]+m\[stderr\]\x1b\[0m \S*warning: cache is cold", coloured)
    assert "\x1b[31m[stderr]" not in coloured and "\x1b[1;31m[stderr]" not in coloured
    assert "\x1b[1;31m[ERROR]\x1b[0m" in coloured
    assert "\x1b]0;" not in coloured and "\x1b[2J" not in coloured  # not SGR: removed
    assert "pwned" not in coloured

    plain = await logs("--no-color", "--host", "web-2")
    assert [line[9:14] for line in plain] == ["web-2"] * 3
    assert await logs("--host", str(run.hosts["web-2"])) == plain
    assert len(await logs("--script", "check.sh")) == 3
    assert len(await logs("--script", str(run.cells[("web-1", "deploy.sh")]))) == 3
    failed = await logs("--failed")
    assert [line[9:] for line in failed] == [
        "web-2 check failed: disk 97% full",
        "web-2 [ERROR] check.sh exited with code 3",
    ]
    assert len(await logs("--grep", "PULLING")) == 2
    assert len(await logs("--grep", "disk [0-9]+%", "--regex")) == 1
    assert len(await logs("--host", "web-1", "--grep", "release")) == 1


async def test_unknown_host_or_bad_regex_is_one_line_error(
    base_url: str, token: str, run: GridRun
) -> None:
    deployment = str(run.deployment_id)
    code, output = await run_shipyard(
        base_url, token, "deploy", "logs", deployment, "--host", "db-9", label="deploy-logs"
    )
    assert code == 1 and "host: no host 'db-9' in this deployment (HTTP 422)" in output
    code, output = await run_shipyard(
        base_url, token, "deploy", "logs", deployment, "--grep", "disk [", "-E", label="deploy-logs"
    )
    assert code == 1 and "grep" in output and "HTTP 422" in output
    code, output = await run_shipyard(
        base_url, token, "deploy", "watch", deployment, "--host", "db-9", label="deploy-watch"
    )
    assert code == 1 and "no host 'db-9'" in output


async def test_watch_filters_the_live_log_and_shows_failed_lines_at_the_end(
    base_url: str, token: str, run: GridRun
) -> None:
    deployment = str(run.deployment_id)
    code, output = await run_shipyard(
        base_url, token, "deploy", "watch", deployment, "--host", "web-1", label="deploy-watch"
    )
    assert code == 3, output  # partial
    assert [m for m in messages(output)] == [
        "web-1 pulling release 42",
        "web-1 [stderr] warning: cache is cold",
        "web-1 download 100%",
        "web-1 check ok",
    ]
    assert "2/2 hosts done, 1 failed" in output and "partial" in output

    code, output = await run_shipyard(
        base_url, token, "deploy", "watch", deployment, "--failed", label="deploy-watch"
    )
    assert code == 3, output
    assert messages(output) == [
        "web-2 check failed: disk 97% full",
        "web-2 [ERROR] check.sh exited with code 3",
    ]
    code, output = await run_shipyard(
        base_url,
        token,
        "deploy",
        "watch",
        deployment,
        "--script",
        "check.sh",
        "--grep",
        "OK",
        label="deploy-watch",
    )
    assert code == 3 and messages(output) == ["web-1 check ok"], output
