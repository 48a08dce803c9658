"""deployments: job id, one script row per (deployment, host, position), heartbeat index

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


def downgrade() -> None:
    op.drop_index("ix_deployments_status_heartbeat_at", table_name="deployments")
    op.drop_index("uq_deployment_scripts_deployment_host_position", table_name="deployment_scripts")
    op.drop_column("deployments", "job_id")
