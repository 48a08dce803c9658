"""`shipyard db upgrade` run twice at once, and by a database user that lacks privileges."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import ProgrammingError

from shipyard import schema
from shipyard.db import to_libpq_url, with_database
from tests.support.postgres import PostgresForTests


def test_two_upgrades_at_once_both_succeed(postgres: PostgresForTests) -> None:
    """Two replicas starting together: one migrates, the other waits and finds it done."""
    url = postgres.create_empty_database()
    env = {**os.environ, "SHIPYARD_DATABASE_URL": url}
    command = [sys.executable, "-m", "shipyard", "db", "upgrade"]
    try:
        # Hold the migration lock ourselves first: both upgrades must wait for it, not race.
        with psycopg.connect(to_libpq_url(url)) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(hashtext('shipyard-migrations'))")
            processes = [
                subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(2)
            ]
            time.sleep(4)
            assert [process.poll() for process in processes] == [None, None]
            assert schema.status(url).current is None
            holder.rollback()
        outputs = [process.communicate(timeout=180)[0].decode() for process in processes]
        assert [process.returncode for process in processes] == [0, 0], outputs
        assert schema.status(url).is_current
    finally:
        postgres.drop_database(url)


def test_an_owner_that_cannot_take_the_application_role_is_told_what_to_run(
    postgres: PostgresForTests,
) -> None:
    login = f"limited_{uuid.uuid4().hex[:8]}"
    database = f"owned_{uuid.uuid4().hex[:8]}"
    admin: Any
    with psycopg.connect(to_libpq_url(postgres.admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{login}" LOGIN NOCREATEROLE')
        admin.execute(f'CREATE DATABASE "{database}" OWNER "{login}"')
    url = with_database(postgres.admin_url, database).replace("postgres:@", f"{login}:@", 1)
    try:
        with pytest.raises(ProgrammingError) as raised:
            schema.upgrade(url)
        message = str(raised.value)
        assert f"GRANT shipyard_app TO {login}" in message
        assert schema.status(url).current is None  # nothing half-applied
    finally:
        with psycopg.connect(to_libpq_url(postgres.admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{login}"')
