"""Alembic environment: runs migrations synchronously with psycopg 3 as the login role."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from shipyard.db import to_sqlalchemy_url
from shipyard.models import metadata

config = context.config
# Two `shipyard db upgrade` at once (two replicas starting) take turns: the second waits, then
# finds the schema current. The lock is the transaction's, so a crash releases it.
MIGRATION_LOCK_SQL = text("SELECT pg_advisory_xact_lock(hashtext('shipyard-migrations'))")


def migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(MIGRATION_LOCK_SQL)
        context.run_migrations()


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    connectable = config.attributes.get("connection")
    if connectable is not None:
        migrate(connectable)
        return
    engine = create_engine(to_sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        migrate(connection)
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run `shipyard db upgrade`")
run_migrations()
