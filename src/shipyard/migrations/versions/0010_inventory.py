"""hosts: inventory (groups, group membership, tags, host and group variables)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
NEW_TENANT_TABLES = ("host_groups", "host_group_members", "host_tags", "inventory_variables")


def _tenant_column() -> sa.Column[object]:
    return sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "host_groups",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        _tenant_column(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _tenant_fk("host_groups"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_groups")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_host_groups_tenant_id_name")),
    )
    op.create_index(op.f("ix_host_groups_tenant_id"), "host_groups", ["tenant_id"])
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON host_groups "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_touch_updated_at()"
    )

    op.create_table(
        "host_group_members",
        sa.Column("group_id", sa.UUID(), nullable=False),
        sa.Column("host_id", sa.UUID(), nullable=False),
        _tenant_column(),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["host_groups.id"],
            name=op.f("fk_host_group_members_group_id_host_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_group_members_host_id_hosts"),
            ondelete="CASCADE",
        ),
        _tenant_fk("host_group_members"),
        sa.PrimaryKeyConstraint("group_id", "host_id", name=op.f("pk_host_group_members")),
    )
    op.create_index(op.f("ix_host_group_members_host_id"), "host_group_members", ["host_id"])
    op.create_index(op.f("ix_host_group_members_tenant_id"), "host_group_members", ["tenant_id"])

    op.create_table(
        "host_tags",
        sa.Column("host_id", sa.UUID(), nullable=False),
        sa.Column("tag", sa.Text(), nullable=False),
        _tenant_column(),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_host_tags_host_id_hosts"), ondelete="CASCADE"
        ),
        _tenant_fk("host_tags"),
        sa.PrimaryKeyConstraint("host_id", "tag", name=op.f("pk_host_tags")),
    )
    op.create_index(op.f("ix_host_tags_tenant_id"), "host_tags", ["tenant_id"])
    op.create_index("ix_host_tags_tenant_id_tag", "host_tags", ["tenant_id", "tag"])

    op.create_table(
        "inventory_variables",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        _tenant_column(),
        sa.Column("host_id", sa.UUID(), nullable=True),
        sa.Column("group_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("secret_value", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(host_id IS NULL) <> (group_id IS NULL)",
            name=op.f("ck_inventory_variables_one_owner"),
        ),
        sa.CheckConstraint(
            "(secret AND value IS NULL AND secret_value IS NOT NULL) "
            "OR (NOT secret AND value IS NOT NULL AND secret_value IS NULL)",
            name=op.f("ck_inventory_variables_one_value"),
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_inventory_variables_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["host_groups.id"],
            name=op.f("fk_inventory_variables_group_id_host_groups"),
            ondelete="CASCADE",
        ),
        _tenant_fk("inventory_variables"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inventory_variables")),
        sa.UniqueConstraint("host_id", "name", name=op.f("uq_inventory_variables_host_id_name")),
        sa.UniqueConstraint("group_id", "name", name=op.f("uq_inventory_variables_group_id_name")),
    )
    op.create_index(op.f("ix_inventory_variables_tenant_id"), "inventory_variables", ["tenant_id"])

    for table in NEW_TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            f"USING (tenant_id = shipyard_current_tenant()) "
            f"WITH CHECK (tenant_id = shipyard_current_tenant())"
        )
        # 0001's default privileges cover tables its owner creates; grant explicitly anyway, so
        # a database upgraded by another owner login still lets requests reach these tables.
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")


def downgrade() -> None:
    op.drop_table("inventory_variables")
    op.drop_table("host_tags")
    op.drop_table("host_group_members")
    op.drop_table("host_groups")
