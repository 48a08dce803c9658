"""deployments: additions for the deployment engine

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema additions of the deployments domain (none yet)."""


def downgrade() -> None:
    """Nothing to undo."""
