"""logs: stdout/stderr streams of a script's lines; log retention per tenant; pruned runs

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column without a default: no rewrite of a large journal table.
    op.add_column("deployment_logs", sa.Column("stream", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_deployment_logs_stream"),
        "deployment_logs",
        "\"stream\" IS NULL OR \"stream\" IN ('stdout', 'stderr')",
    )
    op.add_column("tenants", sa.Column("log_retention_days", sa.Integer(), nullable=True))
    op.add_column("tenants", sa.Column("log_retention_lines", sa.Integer(), nullable=True))
    op.add_column(
        "deployments", sa.Column("log_pruned_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("deployments", "log_pruned_at")
    op.drop_column("tenants", "log_retention_lines")
    op.drop_column("tenants", "log_retention_days")
    op.drop_constraint(op.f("ck_deployment_logs_stream"), "deployment_logs", type_="check")
    op.drop_column("deployment_logs", "stream")
