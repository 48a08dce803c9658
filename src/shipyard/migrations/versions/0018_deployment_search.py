"""deployment search by name through a lookup that can use a trigram index

The list's ``?search=`` is a substring match (``name ILIKE '%word%'``). Under row-level security
the planner may not use ``ILIKE``, which is not leakproof, as an index condition ahead of the
policy's own condition, so the search read the tenant's whole table (about 1 s at a million
runs) even with a trigram index present.

``deployment_ids_named_like(pattern)`` returns the ids of the current tenant's deployments whose
name matches: ``SECURITY DEFINER``, so it runs as the tables' owner, which row-level security
does not bind, and reads the tenant from the transaction's ``shipyard.tenant_id`` setting, never
from an argument (no tenant, no rows). The list then filters ``id = ANY(...)``, which is
leakproof, and keeps every other condition under the policy. Where the pg_trgm extension is
available (Debian's and most managed PostgreSQL; not the embedded server), it is created and a
trigram index on ``deployments.name`` serves the lookup; elsewhere the lookup reads the table as
the search did before.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. A server
# without it, or a login not allowed to, keeps the search without the index.
_TRIGRAM_INDEX = """
DO $$
DECLARE
    trgm_schema text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
            RAISE NOTICE 'pg_trgm not created (%); deployment search reads the table', SQLERRM;
        END;
    END IF;
    SELECT extnamespace::regnamespace::text INTO trgm_schema
    FROM pg_extension WHERE extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS ix_deployments_name_trgm ON deployments '
            'USING gin (name %s.gin_trgm_ops)',
            trgm_schema
        );
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(_TRIGRAM_INDEX)
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    # ROWS 100: a search is expected to be selective, so the list looks its matches up by id.
    op.execute(
        f"""
        CREATE FUNCTION deployment_ids_named_like(pattern text) RETURNS SETOF uuid
        LANGUAGE sql STABLE SECURITY DEFINER ROWS 100
        SET search_path = {schema}, pg_catalog, pg_temp
        AS $$
            SELECT id FROM deployments
            WHERE tenant_id = NULLIF(current_setting('shipyard.tenant_id', true), '')::uuid
              AND name ILIKE pattern
        $$
        """
    )
    op.execute("REVOKE ALL ON FUNCTION deployment_ids_named_like(text) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION deployment_ids_named_like(text) TO shipyard_app")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS deployment_ids_named_like(text)")
    op.execute("DROP INDEX IF EXISTS ix_deployments_name_trgm")
