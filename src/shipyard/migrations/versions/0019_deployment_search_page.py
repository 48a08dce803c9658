"""deployment search returns one page of matches, newest first, with the list's filters

0018's ``deployment_ids_named_like(pattern)`` returned every match, and the list then took its
page: a word most names contain (``release``) read all of its matches first, 465 ms at 100,000
runs where the plain ``ILIKE`` had stopped after a page.

The lookup now takes the page's cursor and size and the list's other filters, and returns the
newest matching ids in the list's order, at most ``max_rows`` (bounded at 1,000). It builds its
query from the filters given and plans it with their values, so PostgreSQL walks the tenant's
newest runs for a common word and uses the trigram index (0018) for a rare one. As in 0018 it is
``SECURITY DEFINER`` and reads the tenant only from the transaction's ``shipyard.tenant_id``
setting: no tenant, no rows. Its values reach the query as parameters, never as text.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARGUMENTS = (
    "pattern text, max_rows integer, before_created_at timestamptz, before_id uuid, "
    "only_status text, only_repository_id uuid, only_host_id uuid, only_created_by uuid, "
    "only_template_id uuid"
)
_SIGNATURE = (
    "deployment_ids_named_like(text, integer, timestamptz, uuid, text, uuid, uuid, uuid, uuid)"
)


def upgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    op.execute("DROP FUNCTION IF EXISTS deployment_ids_named_like(text)")
    op.execute(
        f"""
        CREATE FUNCTION deployment_ids_named_like({_ARGUMENTS}) RETURNS SETOF uuid
        LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 50
        SET search_path = {schema}, pg_catalog, pg_temp
        AS $$
        DECLARE
            tenant uuid := NULLIF(current_setting('shipyard.tenant_id', true), '')::uuid;
            query text := 'SELECT id FROM deployments WHERE tenant_id = $1 AND name ILIKE $2';
        BEGIN
            IF tenant IS NULL OR pattern IS NULL THEN
                RETURN;
            END IF;
            IF before_created_at IS NOT NULL AND before_id IS NOT NULL THEN
                query := query || ' AND (created_at, id) < ($3, $4)';
            END IF;
            IF only_status IS NOT NULL THEN
                query := query || ' AND status = $5';
            END IF;
            IF only_repository_id IS NOT NULL THEN
                query := query || ' AND repository_id = $6';
            END IF;
            IF only_host_id IS NOT NULL THEN
                query := query || ' AND host_ids @> ARRAY[$7]';
            END IF;
            IF only_created_by IS NOT NULL THEN
                query := query || ' AND created_by = $8';
            END IF;
            IF only_template_id IS NOT NULL THEN
                query := query || ' AND template_id = $9';
            END IF;
            query := query || ' ORDER BY created_at DESC, id DESC LIMIT $10';
            RETURN QUERY EXECUTE query USING
                tenant, pattern, before_created_at, before_id, only_status, only_repository_id,
                only_host_id, only_created_by, only_template_id,
                LEAST(GREATEST(COALESCE(max_rows, 0), 0), 1000);
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {_SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {_SIGNATURE} TO shipyard_app")


def downgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
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
