"""git: OAuth applications per provider server, redeemed OAuth states

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
NEW_TENANT_TABLES = ("git_oauth_apps", "git_oauth_states")


def upgrade() -> None:
    """Tenant-owned OAuth applications and the single-use record of OAuth states."""
    op.create_table(
        "git_oauth_apps",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("server_url", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "\"type\" IS NULL OR \"type\" IN ('github', 'gitlab', 'gitea')",
            name=op.f("ck_git_oauth_apps_type"),
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_git_oauth_apps_profile_id_profiles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_git_oauth_apps_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_git_oauth_apps")),
        sa.UniqueConstraint(
            "tenant_id",
            "type",
            "server_url",
            name=op.f("uq_git_oauth_apps_tenant_id_type_server_url"),
        ),
    )
    op.create_index(op.f("ix_git_oauth_apps_tenant_id"), "git_oauth_apps", ["tenant_id"])
    op.create_index(op.f("ix_git_oauth_apps_profile_id"), "git_oauth_apps", ["profile_id"])
    op.create_table(
        "git_oauth_states",
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_git_oauth_states_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_git_oauth_states")),
    )
    op.create_index(op.f("ix_git_oauth_states_tenant_id"), "git_oauth_states", ["tenant_id"])
    for table in NEW_TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            f"USING (tenant_id = shipyard_current_tenant()) "
            f"WITH CHECK (tenant_id = shipyard_current_tenant())"
        )
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON git_oauth_apps "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_touch_updated_at()"
    )


def downgrade() -> None:
    op.drop_table("git_oauth_states")
    op.drop_table("git_oauth_apps")
