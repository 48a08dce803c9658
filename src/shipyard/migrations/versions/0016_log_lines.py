"""log lines numbered at write time: deployments.log_lines, deployment_logs.line_no

A run's lines are numbered 1, 2, 3... as they are stored, so the viewer reads "lines 900,001 to
900,500" as ``line_no BETWEEN`` on an index (constant time at any depth) and a run's size is one
column, instead of counting a million rows (docs/benchmarks.md, "Log viewer").

- ``deployments.log_lines``: how many lines the run has numbered. NULL for runs that had log lines
  before this migration (they are read the old way, by counting); 0 for every other run.
- ``deployment_logs.line_no``: the line's number in its run (NULL: a line of such an old run).
- The log writer takes a block of numbers per batch (``UPDATE deployments SET log_lines =
  log_lines + n ... RETURNING``) in the transaction of its COPY; the trigger below numbers the
  rows inserted without one (Shipyard's own events, inserted through the ORM). The update locks
  the run's row until the commit, so two writers of one run (a pool's parts) never share numbers,
  a rolled-back batch gives its numbers back, and a run's ``seq`` order is its line order.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Runs as the inserting role (no SECURITY DEFINER): a tenant's transaction numbers its own run,
# which the tenant_isolation policy lets it update; a run it cannot see leaves the line NULL (and
# the row's own policy check refuses it anyway). The seq is drawn again once the run's row is
# locked, so a run's seq order stays its line order (and its commit order) for live streams.
NUMBER_FUNCTION = """
CREATE FUNCTION shipyard_number_log_line() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE deployments SET log_lines = log_lines + 1
    WHERE id = NEW.deployment_id AND log_lines IS NOT NULL
    RETURNING log_lines INTO NEW.line_no;
    IF NEW.line_no IS NOT NULL THEN
        NEW.seq := nextval(pg_get_serial_sequence('deployment_logs', 'seq'));
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    # Nullable first (no rewrite of the table), then the default for runs created from now on.
    op.add_column("deployments", sa.Column("log_lines", sa.BigInteger(), nullable=True))
    op.alter_column("deployments", "log_lines", server_default=sa.text("0"))
    # Runs without a line yet (waiting, or the many that never logged) are numbered from now on.
    op.execute(
        "UPDATE deployments d SET log_lines = 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM deployment_logs l WHERE l.deployment_id = d.id)"
    )
    op.add_column("deployment_logs", sa.Column("line_no", sa.BigInteger(), nullable=True))
    # Partial: an existing log table's lines (all NULL) cost nothing to index.
    op.create_index(
        "ix_deployment_logs_deployment_id_line_no",
        "deployment_logs",
        ["deployment_id", "line_no"],
        postgresql_where=sa.text("line_no IS NOT NULL"),
    )
    op.execute(NUMBER_FUNCTION)
    op.execute(
        "CREATE TRIGGER number_log_line BEFORE INSERT ON deployment_logs "
        "FOR EACH ROW WHEN (NEW.line_no IS NULL) EXECUTE FUNCTION shipyard_number_log_line()"
    )
    # A run's row moves with every batch of lines: that is not an edit of the run, so its
    # updated_at stays (the shared touch trigger, re-created for deployments with a condition).
    op.execute("DROP TRIGGER touch_updated_at ON deployments")
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON deployments FOR EACH ROW "
        "WHEN (OLD.log_lines IS NOT DISTINCT FROM NEW.log_lines) "
        "EXECUTE FUNCTION shipyard_touch_updated_at()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER touch_updated_at ON deployments")
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON deployments FOR EACH ROW "
        "EXECUTE FUNCTION shipyard_touch_updated_at()"
    )
    op.execute("DROP TRIGGER number_log_line ON deployment_logs")
    op.execute("DROP FUNCTION shipyard_number_log_line()")
    op.drop_index("ix_deployment_logs_deployment_id_line_no", table_name="deployment_logs")
    op.drop_column("deployment_logs", "line_no")
    op.drop_column("deployments", "log_lines")
