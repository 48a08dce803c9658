"""search: a trigram index on deployment names where the server has pg_trgm

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_deployments_name_trgm"


def upgrade() -> None:
    # The deployments list's `search` is a substring match (ILIKE '%word%'): without a trigram
    # index it reads the whole table (about 1 s at a million runs). pg_trgm ships with
    # PostgreSQL's contrib (Debian's postgresql-NN, RDS, Cloud SQL, ...) and is a trusted
    # extension, so the database owner may create it; the embedded server has no contrib, and
    # there the search stays a scan (docs/deploying.md says so).
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        return
    try:
        # A login without CREATE on the database cannot add the extension: the upgrade goes on
        # without the index rather than fail (a savepoint keeps the transaction usable).
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return
    op.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON deployments USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    # The extension stays: something else may use it.
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
