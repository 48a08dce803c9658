"""deployments: job id, one script row per (deployment, host, position), lean log journal

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deployments", sa.Column("job_id", sa.BigInteger(), nullable=True))
    op.create_index(
        "uq_deployment_scripts_deployment_host_position",
        "deployment_scripts",
        ["deployment_id", "host_id", "position"],
        unique=True,
    )
    # The lost-worker sweep looks for in-progress deployments with a stale heartbeat.
    op.create_index("ix_deployments_status_heartbeat_at", "deployments", ["status", "heartbeat_at"])
    # deployment_logs is an append-only journal written in bulk: keep only the indexes reads use
    # ((deployment_id, seq), seq, id) and no per-row foreign-key checks on the addition columns.
    op.drop_index("ix_deployment_logs_deployment_id", table_name="deployment_logs")
    op.drop_constraint("uq_deployment_logs_seq", "deployment_logs", type_="unique")
    for column, target in (
        ("tenant_id", "tenants"),
        ("host_id", "hosts"),
        ("deployment_script_id", "deployment_scripts"),
    ):
        op.drop_constraint(
            f"fk_deployment_logs_{column}_{target}", "deployment_logs", type_="foreignkey"
        )
        op.drop_index(f"ix_deployment_logs_{column}", table_name="deployment_logs")


def downgrade() -> None:
    for column, target, ondelete in (
        ("tenant_id", "tenants", "CASCADE"),
        ("host_id", "hosts", "SET NULL"),
        ("deployment_script_id", "deployment_scripts", "SET NULL"),
    ):
        op.create_index(f"ix_deployment_logs_{column}", "deployment_logs", [column])
        op.create_foreign_key(
            f"fk_deployment_logs_{column}_{target}",
            "deployment_logs",
            target,
            [column],
            ["id"],
            ondelete=ondelete,
        )
    op.create_unique_constraint("uq_deployment_logs_seq", "deployment_logs", ["seq"])
    op.create_index("ix_deployment_logs_deployment_id", "deployment_logs", ["deployment_id"])
    op.drop_index("ix_deployments_status_heartbeat_at", table_name="deployments")
    op.drop_index("uq_deployment_scripts_deployment_host_position", table_name="deployment_scripts")
    op.drop_column("deployments", "job_id")
