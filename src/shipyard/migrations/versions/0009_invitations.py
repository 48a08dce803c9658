"""accounts: invitations (single-use links, stored hashed) and sign-up attempts per address

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("invited_by", sa.UUID(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_by", sa.UUID(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
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
            "\"role\" IS NULL OR \"role\" IN ('admin', 'developer', 'viewer')",
            name=op.f("ck_invitations_role"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_invitations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"],
            ["profiles.id"],
            name=op.f("fk_invitations_invited_by_profiles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by"],
            ["profiles.id"],
            name=op.f("fk_invitations_accepted_by_profiles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    op.create_index(op.f("ix_invitations_tenant_id"), "invitations", ["tenant_id"])
    op.create_index(op.f("ix_invitations_invited_by"), "invitations", ["invited_by"])
    op.create_index(op.f("ix_invitations_accepted_by"), "invitations", ["accepted_by"])
    op.execute("ALTER TABLE invitations ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON invitations TO {APP_ROLE} "
        f"USING (tenant_id = shipyard_current_tenant()) "
        f"WITH CHECK (tenant_id = shipyard_current_tenant())"
    )
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON invitations "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_touch_updated_at()"
    )
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("ip_address", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_attempts")),
    )
    op.create_index(
        "ix_signup_attempts_ip_address_created_at",
        "signup_attempts",
        ["ip_address", "created_at"],
    )
    # Only system transactions (the login role) read or write these, like login_failures.
    op.execute("ALTER TABLE signup_attempts ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.drop_table("signup_attempts")
    op.drop_table("invitations")
