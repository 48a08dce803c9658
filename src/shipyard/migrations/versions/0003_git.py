"""git: additions for provider sync and OAuth

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema additions of the git domain (none yet)."""


def downgrade() -> None:
    """Nothing to undo."""
