"""The ``shipyard`` command: version, database, users, key rotation, and serve on the embedded server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from shipyard import schema
from shipyard.config import Settings
from shipyard.db import Database, to_libpq_url
from tests.support import canary
from tests.support.api import Account
from tests.support.live_server import serve
from tests.support.postgres import PostgresForTests


def shipyard(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
    unset: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``python -m shipyard ARGS`` with the test's environment, plus ``env``, minus ``unset``."""
    base = {key: value for key, value in os.environ.items() if key not in unset}
    result = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        input=stdin,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    canary.save_output("shipyard", result.stdout, result.stderr)
    return result


def test_version() -> None:
    result = shipyard("--version")
    assert result.returncode == 0 and result.stdout.strip().startswith("shipyard ")


def test_db_upgrade_status_user_create_and_rotate_key(postgres: PostgresForTests) -> None:
    url = postgres.create_empty_database()
    env = {"SHIPYARD_DATABASE_URL": url}
    behind = shipyard("db", "status", env=env)
    assert behind.returncode == 1
    assert "behind" in behind.stderr and "Traceback" not in behind.stderr
    upgraded = shipyard("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    status = shipyard("db", "status", env=env)
    assert status.returncode == 0 and "up to date" in status.stdout
    created = shipyard(
        "user",
        "create",
        "--email",
        "Ops@Example.com",
        "--password-stdin",
        "--tenant-name",
        "Ops",
        env=env,
        stdin="long password 1\n",
    )
    assert created.returncode == 0, created.stderr
    again = shipyard(
        "user",
        "create",
        "--email",
        "ops@example.com",
        "--password-stdin",
        env=env,
        stdin="long password 1\n",
    )
    assert (
        again.returncode == 1
        and "already exists" in again.stderr
        and len(again.stderr.strip().splitlines()) == 1
    )
    short = shipyard(
        "user", "create", "--email", "x@example.com", "--password-stdin", env=env, stdin="short\n"
    )
    assert short.returncode == 1 and "8 characters" in short.stderr
    with psycopg.connect(to_libpq_url(url)) as conn:
        row = conn.execute(
            "SELECT u.email, p.role FROM users u JOIN profiles p ON p.id = u.id"
        ).fetchone()
    assert row == ("ops@example.com", "admin")
    rotated = shipyard("secrets", "rotate-key", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted" in rotated.stdout
    bad_key = shipyard("secrets", "rotate-key", "--new-key", "not-a-key", env=env)
    assert bad_key.returncode == 1 and "Fernet" in bad_key.stderr
    postgres.drop_database(url)


def test_unreachable_database_is_one_clear_line() -> None:
    result = shipyard(
        "db", "status", env={"SHIPYARD_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.returncode == 1
    assert "database error" in result.stderr and "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_the_embedded_database_and_stop_cleanly() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="sy-serve-", dir="/tmp"))
    os.chmod(data_dir, 0o755)
    port = free_port()
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(data_dir)}
    env.pop("SHIPYARD_DATABASE_URL", None)
    env.pop("SHIPYARD_SECRET_KEY", None)
    # Its log (uvicorn's access log and the worker's lines) is searched by the secret canary.
    with canary.output_path("shipyard-serve").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = None
        for _ in range(300):
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:  # the in-process worker has said it is alive
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, "serve never became ready"
        signup = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/signup",
            json={
                "email": "first@example.com",
                "password": "first password",
                "tenant_name": "First",
            },
        )
        assert signup.status_code == 201
        key_file = data_dir / "secret.keys"
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
        pid_file = data_dir / "postgres" / "postmaster.pid"
        assert pid_file.exists()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        for _ in range(100):
            if not pid_file.exists():
                break
            time.sleep(0.1)
        assert not pid_file.exists(), "the embedded PostgreSQL was left running"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    import shutil

    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url"])
def test_non_postgres_url_is_refused(url: str) -> None:
    result = shipyard("db", "status", env={"SHIPYARD_DATABASE_URL": url})
    assert result.returncode == 1 and "PostgreSQL" in result.stderr


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    """The child's stdout as one JSON document."""
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise AssertionError(f"not JSON: {result.stdout!r} (stderr {result.stderr!r})") from exc


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
