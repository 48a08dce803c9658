"""Shell completion of ``shipyard``: commands, and names fetched from a live server (Typer's bash
protocol: ``_SHIPYARD_COMPLETE=complete_bash COMP_WORDS=... COMP_CWORD=N shipyard``); the exit
codes in ``shipyard --help``; no command has an option twice (a command's own ``--url`` would
swallow the global one)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.client import exits
from shipyard.config import Settings
from shipyard.db import Database
from tests.integration.core.test_cli_login import run_cli
from tests.support import canary
from tests.support.api import Account
from tests.support.live_server import serve


@pytest.fixture
async def base_url(db: Database, settings: Settings) -> AsyncIterator[str]:
    async with serve(db, settings) as url:
        yield url


def _complete(words: str, env: dict[str, str | None]) -> list[str]:
    cword = len(words.split(" ")) - 1
    result = CliRunner().invoke(
        app,
        [],
        prog_name="shipyard",
        env={
            "_SHIPYARD_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
            **env,
        },
    )
    assert result.exit_code == 0, result.output
    return result.stdout.split()


async def complete(words: str, **env: str | None) -> list[str]:
    """The candidates bash would offer for the last word of ``words``."""
    return await asyncio.wait_for(asyncio.to_thread(_complete, words, env), timeout=60)


def test_help_shows_the_exit_codes() -> None:
    result = CliRunner().invoke(app, ["--help"], prog_name="shipyard", env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert " ".join(exits.HELP.split()) in text
    for code in ("0 success", "1 error", "2 usage", "3 partial", "4 cancelled", "5 approval"):
        assert code in text


def _commands(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every command under ``command`` (Typer 0.29's own vendored click: duck-typed)."""
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_no_command_takes_an_option_twice() -> None:
    clashes = []
    commands = dict(_commands(typer.main.get_command(app), "shipyard"))
    assert {"shipyard hosts list", "shipyard sso rules move", "shipyard login"} <= set(commands)
    for path, command in commands.items():
        seen: dict[str, str] = {}
        for param in command.params:
            for flag in [*param.opts, *param.secondary_opts]:
                if flag in seen and seen[flag] != param.name:
                    clashes.append(f"{path}: {flag} ({seen[flag]}, {param.name})")
                seen.setdefault(flag, str(param.name))
    assert clashes == []


async def test_commands_complete_without_a_server() -> None:
    assert await complete("shipyard hos") == ["hosts"]
    assert await complete("shipyard notifications ch") == ["channels"]
    assert await complete("shipyard profiles u") == ["use"]


def test_the_installed_command_completes() -> None:
    """The entry point itself (the variable's name comes from the program's)."""
    script = Path(sys.executable).with_name("shipyard")
    finished = subprocess.run(
        [str(script)],
        env={
            **os.environ,
            "_SHIPYARD_COMPLETE": "complete_bash",
            "COMP_WORDS": "shipyard notif",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (finished.returncode, finished.stdout.split()) == (0, ["notifications"])


async def test_names_complete_from_the_server(
    base_url: str, client: httpx.AsyncClient, admin: Account, tmp_path: Path
) -> None:
    # A host and a notification channel of each name.
    for name in ("web-1", "web-2", "db-1"):
        created = await client.post(
            "/api/v1/notification-channels",
            headers=admin.headers,
            json={"type": "webhook", "name": name, "config": {"url": "http://127.0.0.1:9/"}},
        )
        assert created.status_code == 201, created.text
        host = await client.post(
            "/api/v1/hosts",
            headers=admin.headers,
            json={
                "name": name,
                "ip": "127.0.0.1",
                "user": "deploy",
                "password": canary.remember("completion-host-password", "host password"),
            },
        )
        assert host.status_code == 201, host.text

    through_env = {"SHIPYARD_URL": base_url, "SHIPYARD_TOKEN": admin.token}
    assert await complete("shipyard hosts show we", **through_env) == ["web-1", "web-2"]
    assert await complete("shipyard notifications channels test we", **through_env) == [
        "web-1",
        "web-2",
    ]
    assert await complete("shipyard notifications channels test ", **through_env) == [
        "db-1",
        "web-1",
        "web-2",
    ]
    assert await complete("shipyard notifications rules create --channel d", **through_env) == [
        "db-1"
    ]

    # Through a `shipyard login` profile, with nothing in the environment.
    config = tmp_path / "config.toml"
    ran = await run_cli(
        config,
        "login",
        base_url,
        "--email",
        admin.email,
        "--password-stdin",
        stdin=admin.password + "\n",
    )
    assert ran.code == 0, ran.stderr
    no_env: dict[str, str | None] = {
        "SHIPYARD_CONFIG": str(config),
        "SHIPYARD_URL": None,
        "SHIPYARD_TOKEN": None,
        "SHIPYARD_PROFILE": None,
    }
    assert await complete("shipyard notifications deliveries web", **no_env) == [
        "web-1",
        "web-2",
    ]
    # No server to ask (or no token): no names, and no error in the shell.
    assert (
        await complete(
            "shipyard notifications channels test we",
            **{**no_env, "SHIPYARD_CONFIG": str(tmp_path / "none.toml")},
        )
        == []
    )
