"""deployment heartbeats on a table of their own: deployment_heartbeats

A worker beats once a second for every run it owns. The beat used to be an ``UPDATE`` of the
runs' ``deployments`` rows, and a run's log writer holds its row while it numbers and stores a
batch (0016): the beat waited for that row, so every other run of the worker went unbeaten and
the lost-worker sweep ended live runs. The beat now writes here; it only reads ``deployments``
(ownership, cancel requests), which waits for no lock. The row's foreign key takes a KEY SHARE
lock on the run's row, which does not conflict with the writer's update.

``deployments.heartbeat_at`` stays: the claim stamps it, and the sweep stamps the last beat on a
run it ends. A run counts as alive while the later of the two is recent, counting only beats of
the run's current owner. Only the owner's connections (the worker, the sweep) use the table, so
it has neither row-level security nor grants to the application role.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment_heartbeats",
        sa.Column("deployment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_heartbeats_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_deployment_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("deployment_heartbeats")
