"""The ``shipyard`` command as a child process prints JSON: the local commands with ``-o json``,
and the API commands by default into a pipe, quiet without ``-v``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import yaml

from shipyard import schema
from shipyard.config import Settings
from shipyard.db import Database
from tests.support import canary
from tests.support.api import Account
from tests.support.cli_child import parsed, shipyard
from tests.support.live_server import serve
from tests.support.postgres import PostgresForTests


def test_local_commands_print_json(postgres: PostgresForTests, tmp_path: Path) -> None:
    """db, user, secrets, backup and restore with -o json: what they report, as JSON."""
    url = postgres.create_empty_database()
    restored_url = postgres.create_empty_database()
    env = {"SHIPYARD_DATABASE_URL": url, "SHIPYARD_DATA_DIR": str(tmp_path / "data")}
    head = schema.head_revision()
    try:
        behind = shipyard("db", "status", "-o", "json", env=env)
        assert behind.returncode == 1
        assert parsed(behind) == {"current": None, "head": head, "up_to_date": False}
        assert behind.stderr.count("error:") == 1 and "behind" in behind.stderr
        upgraded = shipyard("db", "upgrade", "-o", "json", env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        assert parsed(upgraded) == {"current": head, "head": head, "up_to_date": True}
        status = shipyard("db", "status", "-o", "yaml", env=env)
        assert status.returncode == 0
        assert yaml.safe_load(status.stdout) == {"current": head, "head": head, "up_to_date": True}

        password = canary.remember("json user password 1", "user password")
        created = shipyard(
            "user", "create", "--email", "Json@Example.com", "--name", "Jay Son",
            "--password-stdin", "--tenant-name", "Json", "-o", "json",
            env=env, stdin=password + "\n",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        profile = parsed(created)
        assert profile["email"] == "json@example.com" and profile["full_name"] == "Jay Son"
        assert profile["role"] == "admin" and profile["tenant_name"] == "Json"
        assert set(profile) == {
            "id", "email", "full_name", "avatar_url", "role", "tenant_id", "tenant_name",
        }  # fmt: skip

        archive = tmp_path / "backup.tar.gz"
        made = shipyard("backup", str(archive), "-o", "json", env=env)
        assert made.returncode == 0, made.stderr
        written = parsed(made)
        assert written["path"] == str(archive) and archive.exists()
        assert written["manifest"]["migration_head"] == head
        assert written["manifest"]["keys"] == {"included": False, "source": "environment"}
        # The people's warning about the keys is the table's: JSON carries the manifest's flag.
        restored = shipyard(
            "restore", str(archive), "-o", "json",
            env={**env, "SHIPYARD_DATABASE_URL": restored_url},
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        report = parsed(restored)
        assert report["source"] == str(archive) and report["secrets_ok"] is True
        assert report["manifest"] == written["manifest"] and report["key_file"] is None
        assert isinstance(report["checks"], list) and isinstance(report["notes"], list)

        rotated = shipyard("secrets", "rotate-key", "-o", "json", env=env)
        assert rotated.returncode == 0, rotated.stderr
        counts = parsed(rotated)
        assert isinstance(counts["values_rotated"], int) and counts["key_file"] is None
        # The key comes from SHIPYARD_SECRET_KEY here: the new one is named as what it is.
        assert counts["new_secret_key"] and counts["new_secret_key"] != os.environ.get(
            "SHIPYARD_SECRET_KEY"
        )
    finally:
        postgres.drop_database(url)
        postgres.drop_database(restored_url)


async def test_api_commands_print_json_into_a_pipe_and_stay_quiet_without_v(
    db: Database, settings: Settings, admin: Account
) -> None:
    """The real entry point: JSON by default when stdout is a pipe; HTTP lines only with -v."""
    async with serve(db, settings) as url:
        env = {"SHIPYARD_URL": url, "SHIPYARD_TOKEN": admin.token}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return shipyard(*args, env=env, unset=("SHIPYARD_OUTPUT",))

        quiet = await asyncio.to_thread(run, "hosts", "list")
        assert quiet.returncode == 0, quiet.stderr
        assert parsed(quiet) == []
        assert quiet.stderr == ""
        verbose = await asyncio.to_thread(run, "hosts", "list", "-v")
        assert verbose.returncode == 0 and parsed(verbose) == []
        assert f"HTTP Request: GET {url}/api/v1/hosts" in verbose.stderr
        # Before the sub-command too; and a missing repository is still one line.
        missing = await asyncio.to_thread(run, "-v", "repos", "show", "nothing-here")
        assert missing.returncode == 1 and missing.stdout == ""
        assert "HTTP Request: GET" in missing.stderr
        assert missing.stderr.strip().splitlines()[-1] == (
            "error: no repository named 'nothing-here'"
        )
        assert "Traceback" not in missing.stderr
