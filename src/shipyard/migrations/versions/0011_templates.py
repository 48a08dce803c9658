"""templates: saved runs with parameters; what launched each deployment; worker pools

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
TRIGGERS = ("manual", "api", "schedule", "webhook")


def _json(name: str, default: str) -> sa.Column[object]:
    return sa.Column(
        name, postgresql.JSONB(), server_default=sa.text(f"'{default}'::jsonb"), nullable=False
    )


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("repository_id", sa.UUID(), nullable=True),
        sa.Column("ref", sa.Text(), nullable=True),
        _json("scripts", "[]"),
        _json("target", "{}"),
        _json("options", "{}"),
        _json("environment", "{}"),
        sa.Column("secret_environment", sa.Text(), nullable=True),
        _json("cicd_steps", "[]"),
        _json("parameters", "[]"),
        sa.Column("admin_only", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_templates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name=op.f("fk_templates_repository_id_repositories"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["profiles.id"],
            name=op.f("fk_templates_created_by_profiles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_templates_tenant_id_name")),
    )
    op.create_index(op.f("ix_templates_tenant_id"), "templates", ["tenant_id"])
    op.create_index(op.f("ix_templates_repository_id"), "templates", ["repository_id"])
    op.create_index(op.f("ix_templates_created_by"), "templates", ["created_by"])
    op.execute(
        "CREATE TRIGGER touch_updated_at BEFORE UPDATE ON templates "
        "FOR EACH ROW EXECUTE FUNCTION shipyard_touch_updated_at()"
    )
    op.execute("ALTER TABLE templates ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON templates TO {APP_ROLE} "
        "USING (tenant_id = shipyard_current_tenant()) "
        "WITH CHECK (tenant_id = shipyard_current_tenant())"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON templates TO {APP_ROLE}")

    # What launched each run, with what; added beside the seed's columns.
    op.add_column("deployments", sa.Column("template_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_deployments_template_id_templates"),
        "deployments",
        "templates",
        ["template_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_deployments_template_id_created_at", "deployments", ["template_id", "created_at"]
    )
    op.add_column(
        "deployments", sa.Column("trigger", sa.Text(), server_default="manual", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_deployments_trigger"),
        "deployments",
        "\"trigger\" IS NULL OR \"trigger\" IN ('manual', 'api', 'schedule', 'webhook')",
    )
    op.add_column("deployments", sa.Column("launched_by", postgresql.JSONB(), nullable=True))
    op.add_column("deployments", _json("parameters", "{}"))
    op.add_column("deployments", sa.Column("target", postgresql.JSONB(), nullable=True))
    # The worker that ran each script row (worker pools are checked through it).
    op.add_column("deployment_scripts", sa.Column("worker_id", sa.Text(), nullable=True))
    # Worker pools: the workers that can reach a host (its own pool, else its groups').
    op.add_column("hosts", sa.Column("pool", sa.Text(), nullable=True))
    op.add_column("host_groups", sa.Column("pool", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("host_groups", "pool")
    op.drop_column("hosts", "pool")
    op.drop_column("deployment_scripts", "worker_id")
    op.drop_column("deployments", "target")
    op.drop_column("deployments", "parameters")
    op.drop_column("deployments", "launched_by")
    op.drop_constraint(op.f("ck_deployments_trigger"), "deployments", type_="check")
    op.drop_column("deployments", "trigger")
    op.drop_index("ix_deployments_template_id_created_at", table_name="deployments")
    op.drop_constraint(
        op.f("fk_deployments_template_id_templates"), "deployments", type_="foreignkey"
    )
    op.drop_column("deployments", "template_id")
    op.drop_index(op.f("ix_templates_created_by"), table_name="templates")
    op.drop_table("templates")
