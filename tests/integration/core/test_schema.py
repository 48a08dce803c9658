"""The migrated schema holds the seed document's tables, columns, types, keys and indexes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from shipyard import schema
from shipyard.db import to_libpq_url, to_sqlalchemy_url
from shipyard.models import metadata
from tests.support.postgres import PostgresForTests

REPO = Path(__file__).resolve().parents[3]
# The shared seed document when it sits beside the checkout (as for developers and CI), else the
# copy kept in docs/; the test below checks that the two have not drifted apart.
SHARED_SEED = REPO.parent / "shared" / "seeds" / "000_297481ddfd739b4a.txt"
SEED_COPY = REPO / "docs" / "seed-schema.md"
SEED = SHARED_SEED if SHARED_SEED.exists() else SEED_COPY
# information_schema's name for each seed type.
SEED_TYPES = {
    "uuid": "uuid",
    "text": "text",
    "jsonb": "jsonb",
    "uuid[]": "ARRAY",
    "timestamp": "timestamp with time zone",
    "int4": "integer",
    "integer": "integer",
    "bool": "boolean",
}
# Recorded in docs/decisions.md: the seed's text type cannot hold a real foreign key to a uuid.
DECIDED_TYPE_CHANGES = {("profiles", "tenant_id"): "uuid"}


def parse_seed() -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str, str]]]:
    text = SEED.read_text()
    tables: dict[str, dict[str, str]] = {}
    for match in re.finditer(r"### \d+\. (\w+)\n(.*?)(?=\n### |\n## )", text, re.S):
        columns = {}
        for row in re.findall(r"^\| (\w+) \| ([\w\[\]]+) \|", match.group(2), re.M):
            if row[0] != "Column":
                columns[row[0]] = row[1]
        tables[match.group(1)] = columns
    relations = re.findall(r"`(\w+)\.(\w+)` → `(\w+)\.(\w+)`", text)
    return tables, relations


SEED_TABLES, SEED_RELATIONS = parse_seed()


@pytest.fixture(scope="module")
def empty_upgraded(postgres: PostgresForTests) -> Any:
    url = postgres.create_empty_database()
    schema.upgrade(url)
    yield url
    postgres.drop_database(url)


def test_the_docs_copy_of_the_seed_matches_the_shared_one() -> None:
    if SHARED_SEED.exists():
        assert SEED_COPY.read_text() == SHARED_SEED.read_text()
    assert SEED_COPY.exists()


def test_seed_document_parsed() -> None:
    assert len(SEED_TABLES) == 12
    assert len(SEED_RELATIONS) == 13
    assert sum(len(columns) for columns in SEED_TABLES.values()) > 100


def test_every_seed_table_and_column_has_its_type(empty_upgraded: str) -> None:
    with psycopg.connect(to_libpq_url(empty_upgraded)) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        ).fetchall()
    actual = {(table, column): (data_type, udt) for table, column, data_type, udt in rows}
    for table, columns in SEED_TABLES.items():
        for column, seed_type in columns.items():
            assert (table, column) in actual, f"{table}.{column} is missing"
            data_type, udt = actual[(table, column)]
            expected = DECIDED_TYPE_CHANGES.get((table, column), SEED_TYPES[seed_type])
            assert data_type == expected, f"{table}.{column}: {data_type} != {expected}"
            if seed_type == "uuid[]":
                assert udt == "_uuid"


def test_every_seed_relationship_is_a_foreign_key_with_an_index(empty_upgraded: str) -> None:
    with psycopg.connect(to_libpq_url(empty_upgraded)) as conn:
        fks = set(
            conn.execute(
                """
                SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, af.attname
                FROM pg_constraint c
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
                JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
                WHERE c.contype = 'f'
                """
            ).fetchall()
        )
        leading = set(
            conn.execute(
                """
                SELECT i.indrelid::regclass::text, a.attname FROM pg_index i
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                """
            ).fetchall()
        )
    for relation in SEED_RELATIONS:
        assert relation in fks, f"no foreign key {relation}"
    for table, column, _, _ in fks:
        assert (table, column) in leading, f"no index led by {table}.{column}"


def test_pins_are_keyed_by_profile_and_repository(empty_upgraded: str) -> None:
    with psycopg.connect(to_libpq_url(empty_upgraded)) as conn:
        row = conn.execute(
            """
            SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
            WHERE c.conrelid = 'profile_repository_pins'::regclass AND c.contype = 'p'
            """
        ).fetchone()
    assert row is not None
    assert row[0] == ["profile_id", "repository_id"]


def test_server_defaults_fill_ids_and_timestamps_and_updated_at_moves(empty_upgraded: str) -> None:
    with psycopg.connect(to_libpq_url(empty_upgraded)) as conn:
        fetched = conn.execute(
            "INSERT INTO tenants (name) VALUES ('t') RETURNING id, created_at, updated_at"
        ).fetchone()
        assert fetched is not None
        tenant_id, created, updated = fetched
        conn.commit()
        assert tenant_id is not None and created == updated
        fetched = conn.execute(
            "UPDATE tenants SET name = 'u' WHERE id = %s RETURNING updated_at", (tenant_id,)
        ).fetchone()
        assert fetched is not None
        (later,) = fetched
        assert later > updated
        conn.rollback()


def test_check_constraints_refuse_unknown_status(empty_upgraded: str) -> None:
    with psycopg.connect(to_libpq_url(empty_upgraded)) as conn:
        fetched = conn.execute("INSERT INTO tenants (name) VALUES ('t') RETURNING id").fetchone()
        assert fetched is not None
        (tenant_id,) = fetched
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO hosts (name, tenant_id, status) VALUES ('h', %s, 'sleepy')",
                (tenant_id,),
            )


def test_migrations_match_the_models(empty_upgraded: str) -> None:
    engine = create_engine(to_sqlalchemy_url(empty_upgraded), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    # procrastinate's tables are created by its own schema, not our models.
    diff = [d for d in diff if "procrastinate" not in repr(d)]
    assert diff == []
