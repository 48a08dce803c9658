"""cicd: disabled jobs marked in the catalogue; failing providers back off

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "cicd_jobs",
        sa.Column("buildable", sa.Boolean(), server_default="true", nullable=False),
    )
    op.add_column(
        "cicd_providers",
        sa.Column("sync_failures", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "cicd_providers", sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("cicd_providers", "next_sync_at")
    op.drop_column("cicd_providers", "sync_failures")
    op.drop_column("cicd_jobs", "buildable")
