"""The ``shipyard`` command as a child process: version, database, users and key rotation."""

from __future__ import annotations

import psycopg
import pytest

from shipyard.db import to_libpq_url
from tests.support.cli_child import shipyard
from tests.support.postgres import PostgresForTests


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


@pytest.mark.parametrize("url", ["mysql://x@y/z", "not a url"])
def test_non_postgres_url_is_refused(url: str) -> None:
    result = shipyard("db", "status", env={"SHIPYARD_DATABASE_URL": url})
    assert result.returncode == 1 and "PostgreSQL" in result.stderr
