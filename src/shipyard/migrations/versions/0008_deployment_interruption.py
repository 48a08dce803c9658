"""deployments: `interrupted` status; remote PID, process group and temp directory of each script

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_DEPLOYMENT = (
    "pending",
    "scheduled",
    "in_progress",
    "success",
    "failed",
    "partial",
    "cancelled",
)
OLD_SCRIPT = ("pending", "running", "success", "failed", "skipped", "cancelled")


def check_in(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IS NULL OR "{column}" IN ({quoted})'


def _replace_check(table: str, values: Sequence[str]) -> None:
    # The seed's text column keeps its type; only the set of allowed values grows.
    op.drop_constraint(op.f(f"ck_{table}_status"), table, type_="check")
    op.create_check_constraint(op.f(f"ck_{table}_status"), table, check_in("status", values))


def upgrade() -> None:
    _replace_check("deployments", (*OLD_DEPLOYMENT, "interrupted"))
    _replace_check("deployment_scripts", (*OLD_SCRIPT, "interrupted"))
    # Where a script runs on its host, so a lost worker's processes can be stopped later.
    op.add_column("deployment_scripts", sa.Column("remote_pid", sa.Integer(), nullable=True))
    op.add_column("deployment_scripts", sa.Column("remote_pgid", sa.Integer(), nullable=True))
    op.add_column("deployment_scripts", sa.Column("remote_temp_dir", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("deployment_scripts", "remote_temp_dir")
    op.drop_column("deployment_scripts", "remote_pgid")
    op.drop_column("deployment_scripts", "remote_pid")
    op.execute("UPDATE deployment_scripts SET status = 'failed' WHERE status = 'interrupted'")
    op.execute("UPDATE deployments SET status = 'failed' WHERE status = 'interrupted'")
    _replace_check("deployment_scripts", OLD_SCRIPT)
    _replace_check("deployments", OLD_DEPLOYMENT)
