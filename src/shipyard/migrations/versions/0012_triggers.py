"""triggers: cron schedules and inbound webhooks on templates, their fires and deliveries

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
NEW_TENANT_TABLES = ("schedules", "schedule_fires", "webhooks", "webhook_deliveries")


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _tenant() -> sa.Column[object]:
    return sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False)


def _json(name: str, default: str) -> sa.Column[object]:
    return sa.Column(
        name, postgresql.JSONB(), server_default=sa.text(f"'{default}'::jsonb"), nullable=False
    )


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "schedules",
        _id(),
        _tenant(),
        sa.Column("template_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        # Plain parameter values; secret ones are one encrypted JSON object.
        _json("parameters", "{}"),
        sa.Column("secret_parameters", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("overlap_policy", sa.Text(), server_default="skip", nullable=False),
        sa.Column("missed_policy", sa.Text(), server_default="skip", nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        # The next fire time (UTC), kept by the scheduler; NULL when paused or past ends_at.
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "overlap_policy IN ('skip', 'queue', 'allow')",
            name=op.f("ck_schedules_overlap_policy"),
        ),
        sa.CheckConstraint(
            "missed_policy IN ('skip', 'run_once')", name=op.f("ck_schedules_missed_policy")
        ),
        _fk("schedules", "tenant_id", "tenants", "CASCADE"),
        _fk("schedules", "template_id", "templates", "CASCADE"),
        _fk("schedules", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedules")),
    )
    op.create_index(op.f("ix_schedules_tenant_id"), "schedules", ["tenant_id"])
    op.create_index(op.f("ix_schedules_template_id"), "schedules", ["template_id"])
    op.create_index(op.f("ix_schedules_created_by"), "schedules", ["created_by"])
    # The scheduler's scan: enabled schedules by next fire time.
    op.create_index(
        "ix_schedules_next_fire_at",
        "schedules",
        ["next_fire_at"],
        postgresql_where=sa.text("enabled AND next_fire_at IS NOT NULL"),
    )

    # One row per (schedule, fire time): the unique key is what makes a fire happen at most once.
    op.create_table(
        "schedule_fires",
        _id(),
        _tenant(),
        sa.Column("schedule_id", sa.UUID(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("deployment_id", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "verdict IN ('ran', 'queued', 'skipped', 'missed', 'failed')",
            name=op.f("ck_schedule_fires_verdict"),
        ),
        _fk("schedule_fires", "tenant_id", "tenants", "CASCADE"),
        _fk("schedule_fires", "schedule_id", "schedules", "CASCADE"),
        _fk("schedule_fires", "deployment_id", "deployments", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_fires")),
        sa.UniqueConstraint(
            "schedule_id", "fire_time", name=op.f("uq_schedule_fires_schedule_id_fire_time")
        ),
    )
    op.create_index(op.f("ix_schedule_fires_tenant_id"), "schedule_fires", ["tenant_id"])
    op.create_index(op.f("ix_schedule_fires_deployment_id"), "schedule_fires", ["deployment_id"])

    op.create_table(
        "webhooks",
        _id(),
        _tenant(),
        sa.Column("template_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        # generic hooks: 'hmac' (HMAC-SHA256 of the body) or 'bearer'.
        sa.Column("auth", sa.Text(), server_default="hmac", nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        _json("events", "[]"),
        _json("branches", "[]"),
        _json("tags", "[]"),
        _json("paths", "[]"),
        _json("parameter_map", "{}"),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        # The hook's id at the provider when Shipyard registered it there.
        sa.Column("remote_hook_id", sa.Text(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "provider IN ('github', 'gitlab', 'gitea', 'generic')",
            name=op.f("ck_webhooks_provider"),
        ),
        sa.CheckConstraint("auth IN ('hmac', 'bearer')", name=op.f("ck_webhooks_auth")),
        _fk("webhooks", "tenant_id", "tenants", "CASCADE"),
        _fk("webhooks", "template_id", "templates", "CASCADE"),
        _fk("webhooks", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index(op.f("ix_webhooks_tenant_id"), "webhooks", ["tenant_id"])
    op.create_index(op.f("ix_webhooks_template_id"), "webhooks", ["template_id"])
    op.create_index(op.f("ix_webhooks_created_by"), "webhooks", ["created_by"])

    # One row per delivery; (webhook, delivery id) unique so a redelivery runs nothing twice.
    op.create_table(
        "webhook_deliveries",
        _id(),
        _tenant(),
        sa.Column("webhook_id", sa.UUID(), nullable=False),
        sa.Column("delivery_id", sa.Text(), nullable=True),
        sa.Column("event", sa.Text(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("deployment_id", sa.UUID(), nullable=True),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("commit_sha", sa.Text(), nullable=True),
        sa.Column("remote_address", sa.Text(), nullable=True),
        _timestamp("received_at"),
        sa.CheckConstraint(
            "verdict IN ('ran', 'filtered', 'refused', 'duplicate')",
            name=op.f("ck_webhook_deliveries_verdict"),
        ),
        _fk("webhook_deliveries", "tenant_id", "tenants", "CASCADE"),
        _fk("webhook_deliveries", "webhook_id", "webhooks", "CASCADE"),
        _fk("webhook_deliveries", "deployment_id", "deployments", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_tenant_id"), "webhook_deliveries", ["tenant_id"])
    op.create_index(
        op.f("ix_webhook_deliveries_deployment_id"), "webhook_deliveries", ["deployment_id"]
    )
    op.create_index(
        "ix_webhook_deliveries_webhook_id_received_at",
        "webhook_deliveries",
        ["webhook_id", "received_at"],
    )
    # Deduplication: a delivery id is accepted once per hook ('duplicate' rows carry no id).
    op.create_index(
        "uq_webhook_deliveries_webhook_id_delivery_id",
        "webhook_deliveries",
        ["webhook_id", "delivery_id"],
        unique=True,
        postgresql_where=sa.text("verdict <> 'duplicate' AND delivery_id IS NOT NULL"),
    )

    for table in ("schedules", "webhooks"):
        op.execute(
            f"CREATE TRIGGER touch_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION shipyard_touch_updated_at()"
        )
    for table in NEW_TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} TO {APP_ROLE} "
            "USING (tenant_id = shipyard_current_tenant()) "
            "WITH CHECK (tenant_id = shipyard_current_tenant())"
        )
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")

    # What fired each run (beside the seed's columns).
    for column, target in (("schedule_id", "schedules"), ("webhook_id", "webhooks")):
        op.add_column("deployments", sa.Column(column, sa.UUID(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_deployments_{column}_{target}"),
            "deployments",
            target,
            [column],
            ["id"],
            ondelete="SET NULL",
        )
        op.create_index(op.f(f"ix_deployments_{column}"), "deployments", [column])


def downgrade() -> None:
    for column, target in (("webhook_id", "webhooks"), ("schedule_id", "schedules")):
        op.drop_index(op.f(f"ix_deployments_{column}"), table_name="deployments")
        op.drop_constraint(
            op.f(f"fk_deployments_{column}_{target}"), "deployments", type_="foreignkey"
        )
        op.drop_column("deployments", column)
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("schedule_fires")
    op.drop_table("schedules")
