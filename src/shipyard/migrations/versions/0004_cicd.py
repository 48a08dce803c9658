"""cicd: additions for CI/CD providers and steps

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema additions of the cicd domain (none yet)."""


def downgrade() -> None:
    """Nothing to undo."""
