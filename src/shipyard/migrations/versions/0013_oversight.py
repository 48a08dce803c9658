"""oversight: notification channels, rules and deliveries; approvals; freeze windows; audit

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
NEW_TENANT_TABLES = (
    "notification_channels",
    "notification_rules",
    "notification_deliveries",
    "notification_attempts",
    "notification_rule_states",
    "deployment_approvals",
    "freeze_windows",
    "audit_streams",
)
TOUCHED_TABLES = ("notification_channels", "notification_rules", "freeze_windows", "audit_streams")

OLD_DEPLOYMENT_STATUSES = (
    "pending",
    "scheduled",
    "in_progress",
    "success",
    "failed",
    "partial",
    "cancelled",
    "interrupted",
)
NEW_DEPLOYMENT_STATUSES = (*OLD_DEPLOYMENT_STATUSES, "pending_approval")
OLD_DELIVERY_VERDICTS = ("ran", "filtered", "refused", "duplicate")
NEW_DELIVERY_VERDICTS = (*OLD_DELIVERY_VERDICTS, "skipped")


def _in(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


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
    # --- notifications ------------------------------------------------------------------------
    op.create_table(
        "notification_channels",
        _id(),
        _tenant(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        # The type's plain settings (SMTP host and port, recipients, ntfy topic, ...).
        _json("config", "{}"),
        # The type's secret settings as one encrypted JSON object (SMTP password, the Slack /
        # Teams / Discord webhook URL, the ntfy token, the generic webhook's signing secret).
        sa.Column("secret_config", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            _in("type", ("email", "slack", "teams", "discord", "ntfy", "webhook")),
            name=op.f("ck_notification_channels_type"),
        ),
        _fk("notification_channels", "tenant_id", "tenants", "CASCADE"),
        _fk("notification_channels", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint(
            "tenant_id", "name", name=op.f("uq_notification_channels_tenant_id_name")
        ),
    )
    op.create_index(
        op.f("ix_notification_channels_tenant_id"), "notification_channels", ["tenant_id"]
    )
    op.create_index(
        op.f("ix_notification_channels_created_by"), "notification_channels", ["created_by"]
    )

    op.create_table(
        "notification_rules",
        _id(),
        _tenant(),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        # Event names (deployment.failed, schedule.missed, ...).
        _json("events", "[]"),
        sa.Column("scope_type", sa.Text(), server_default="tenant", nullable=False),
        sa.Column("scope_id", sa.UUID(), nullable=True),
        sa.Column("only_on_change", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            _in("scope_type", ("tenant", "template", "repository")),
            name=op.f("ck_notification_rules_scope_type"),
        ),
        sa.CheckConstraint(
            "(scope_type = 'tenant') = (scope_id IS NULL)",
            name=op.f("ck_notification_rules_scope_id"),
        ),
        _fk("notification_rules", "tenant_id", "tenants", "CASCADE"),
        _fk("notification_rules", "channel_id", "notification_channels", "CASCADE"),
        _fk("notification_rules", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_rules")),
    )
    op.create_index(op.f("ix_notification_rules_tenant_id"), "notification_rules", ["tenant_id"])
    op.create_index(op.f("ix_notification_rules_channel_id"), "notification_rules", ["channel_id"])
    op.create_index(op.f("ix_notification_rules_created_by"), "notification_rules", ["created_by"])

    # One message to one channel (a rule's match, or a "send test"), sent by the job queue.
    op.create_table(
        "notification_deliveries",
        _id(),
        _tenant(),
        sa.Column("channel_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("subject_type", sa.Text(), nullable=True),
        sa.Column("subject_id", sa.UUID(), nullable=True),
        # The facts the message is rendered from (name, status, trigger, commit, hosts, link).
        _json("message", "{}"),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            _in("status", ("pending", "retrying", "delivered", "failed")),
            name=op.f("ck_notification_deliveries_status"),
        ),
        _fk("notification_deliveries", "tenant_id", "tenants", "CASCADE"),
        _fk("notification_deliveries", "channel_id", "notification_channels", "CASCADE"),
        _fk("notification_deliveries", "rule_id", "notification_rules", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    op.create_index(
        op.f("ix_notification_deliveries_tenant_id"), "notification_deliveries", ["tenant_id"]
    )
    op.create_index(
        op.f("ix_notification_deliveries_rule_id"), "notification_deliveries", ["rule_id"]
    )
    op.create_index(
        "ix_notification_deliveries_channel_id_created_at",
        "notification_deliveries",
        ["channel_id", "created_at"],
    )

    # Every attempt at a delivery: what the receiver said (HTTP status, SMTP reply) or the error.
    op.create_table(
        "notification_attempts",
        _id(),
        _tenant(),
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _timestamp("started_at"),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _fk("notification_attempts", "tenant_id", "tenants", "CASCADE"),
        _fk("notification_attempts", "delivery_id", "notification_deliveries", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_attempts")),
        sa.UniqueConstraint(
            "delivery_id", "attempt", name=op.f("uq_notification_attempts_delivery_id_attempt")
        ),
    )
    op.create_index(
        op.f("ix_notification_attempts_tenant_id"), "notification_attempts", ["tenant_id"]
    )

    # "Only on change": the last outcome a rule saw per subject (a template, a repository, ...).
    op.create_table(
        "notification_rule_states",
        _tenant(),
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("subject_key", sa.Text(), nullable=False),
        sa.Column("last_event", sa.Text(), nullable=False),
        _timestamp("updated_at"),
        _fk("notification_rule_states", "tenant_id", "tenants", "CASCADE"),
        _fk("notification_rule_states", "rule_id", "notification_rules", "CASCADE"),
        sa.PrimaryKeyConstraint("rule_id", "subject_key", name=op.f("pk_notification_rule_states")),
    )
    op.create_index(
        op.f("ix_notification_rule_states_tenant_id"), "notification_rule_states", ["tenant_id"]
    )

    # --- approvals ----------------------------------------------------------------------------
    for column in (
        sa.Column("approval_required", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("approvals_needed", sa.Integer(), server_default="1", nullable=False),
        sa.Column("approver_role", sa.Text(), server_default="developer", nullable=False),
        sa.Column("allow_self_approval", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("approval_timeout_minutes", sa.Integer(), server_default="1440", nullable=False),
    ):
        op.add_column("templates", column)
    op.create_check_constraint(
        op.f("ck_templates_approver_role"),
        "templates",
        _in("approver_role", ("admin", "developer", "viewer")),
    )
    op.create_check_constraint(
        op.f("ck_templates_approvals_needed"), "templates", "approvals_needed BETWEEN 1 AND 10"
    )

    # A run waiting for approval: how many it needs and until when (snapshot of the template's
    # settings at launch); a freeze override: the window and the written reason.
    op.add_column("deployments", sa.Column("approvals_needed", sa.Integer(), nullable=True))
    op.add_column(
        "deployments", sa.Column("approval_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("deployments", sa.Column("freeze_window_id", sa.UUID(), nullable=True))
    op.add_column("deployments", sa.Column("freeze_override_reason", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_deployments_status"), "deployments", type_="check")
    op.create_check_constraint(
        op.f("ck_deployments_status"),
        "deployments",
        '"status" IS NULL OR ' + _in('"status"', NEW_DEPLOYMENT_STATUSES),
    )
    op.create_index(
        "ix_deployments_approval_expires_at",
        "deployments",
        ["approval_expires_at"],
        postgresql_where=sa.text("status = 'pending_approval'"),
    )

    op.create_table(
        "deployment_approvals",
        _id(),
        _tenant(),
        sa.Column("deployment_id", sa.UUID(), nullable=False),
        sa.Column("decided_by", sa.UUID(), nullable=True),
        # The decider's email as it was (the profile may be deleted later).
        sa.Column("decider_email", sa.Text(), nullable=True),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            _in("decision", ("approved", "rejected")),
            name=op.f("ck_deployment_approvals_decision"),
        ),
        _fk("deployment_approvals", "tenant_id", "tenants", "CASCADE"),
        _fk("deployment_approvals", "deployment_id", "deployments", "CASCADE"),
        _fk("deployment_approvals", "decided_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_approvals")),
        # One decision per person per run.
        sa.UniqueConstraint(
            "deployment_id",
            "decided_by",
            name=op.f("uq_deployment_approvals_deployment_id_decided_by"),
        ),
    )
    op.create_index(
        op.f("ix_deployment_approvals_tenant_id"), "deployment_approvals", ["tenant_id"]
    )
    op.create_index(
        op.f("ix_deployment_approvals_decided_by"), "deployment_approvals", ["decided_by"]
    )

    # --- freeze windows -----------------------------------------------------------------------
    op.create_table(
        "freeze_windows",
        _id(),
        _tenant(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        # recurring: a five-field cron start, a duration and a time zone.
        sa.Column("cron", sa.Text(), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.Text(), server_default="UTC", nullable=False),
        # fixed: the period itself; recurring: optional bounds of when it applies.
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        # Empty lists: the window applies to every run of the tenant.
        sa.Column("template_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("group_ids", postgresql.ARRAY(sa.UUID()), server_default="{}", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            _in("kind", ("recurring", "fixed")), name=op.f("ck_freeze_windows_kind")
        ),
        sa.CheckConstraint(
            "kind <> 'recurring' OR (cron IS NOT NULL AND duration_minutes > 0)",
            name=op.f("ck_freeze_windows_recurring"),
        ),
        sa.CheckConstraint(
            "kind <> 'fixed' OR (starts_at IS NOT NULL AND ends_at > starts_at)",
            name=op.f("ck_freeze_windows_fixed"),
        ),
        _fk("freeze_windows", "tenant_id", "tenants", "CASCADE"),
        _fk("freeze_windows", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freeze_windows")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_freeze_windows_tenant_id_name")),
    )
    op.create_index(op.f("ix_freeze_windows_tenant_id"), "freeze_windows", ["tenant_id"])
    op.create_index(op.f("ix_freeze_windows_created_by"), "freeze_windows", ["created_by"])
    op.create_foreign_key(
        op.f("fk_deployments_freeze_window_id_freeze_windows"),
        "deployments",
        "freeze_windows",
        ["freeze_window_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_deployments_freeze_window_id"), "deployments", ["freeze_window_id"])

    # A webhook delivery that arrives during a freeze window is recorded as skipped.
    op.drop_constraint(op.f("ck_webhook_deliveries_verdict"), "webhook_deliveries", type_="check")
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_verdict"),
        "webhook_deliveries",
        _in("verdict", NEW_DELIVERY_VERDICTS),
    )

    # --- audit --------------------------------------------------------------------------------
    op.add_column("audit_events", sa.Column("actor_email", sa.Text(), nullable=True))
    op.add_column("audit_events", _json("changes", "{}"))
    op.add_column(
        "audit_events", sa.Column("outcome", sa.Text(), server_default="success", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_audit_events_outcome"),
        "audit_events",
        _in("outcome", ("success", "failure", "denied")),
    )
    op.create_index(
        "ix_audit_events_tenant_id_action_created_at",
        "audit_events",
        ["tenant_id", "action", "created_at"],
    )
    # Days to keep a tenant's audit entries (NULL: the installation's SHIPYARD_AUDIT_RETENTION_DAYS).
    op.add_column("tenants", sa.Column("audit_retention_days", sa.Integer(), nullable=True))

    # Where new audit entries are streamed: syslog (RFC 5424 over UDP or TCP) or a webhook.
    op.create_table(
        "audit_streams",
        _id(),
        _tenant(),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        _json("config", "{}"),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        # The last entry sent (created_at, id): the stream resumes after it.
        sa.Column("cursor_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor_id", sa.UUID(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(_in("type", ("syslog", "webhook")), name=op.f("ck_audit_streams_type")),
        _fk("audit_streams", "tenant_id", "tenants", "CASCADE"),
        _fk("audit_streams", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_streams")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_audit_streams_tenant_id_name")),
    )
    op.create_index(op.f("ix_audit_streams_tenant_id"), "audit_streams", ["tenant_id"])
    op.create_index(op.f("ix_audit_streams_created_by"), "audit_streams", ["created_by"])

    for table in TOUCHED_TABLES:
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


def downgrade() -> None:
    op.drop_table("audit_streams")
    op.drop_column("tenants", "audit_retention_days")
    op.drop_index("ix_audit_events_tenant_id_action_created_at", table_name="audit_events")
    op.drop_constraint(op.f("ck_audit_events_outcome"), "audit_events", type_="check")
    for column in ("outcome", "changes", "actor_email"):
        op.drop_column("audit_events", column)
    op.execute("DELETE FROM webhook_deliveries WHERE verdict = 'skipped'")
    op.drop_constraint(op.f("ck_webhook_deliveries_verdict"), "webhook_deliveries", type_="check")
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_verdict"),
        "webhook_deliveries",
        _in("verdict", OLD_DELIVERY_VERDICTS),
    )
    op.drop_index(op.f("ix_deployments_freeze_window_id"), table_name="deployments")
    op.drop_constraint(
        op.f("fk_deployments_freeze_window_id_freeze_windows"), "deployments", type_="foreignkey"
    )
    op.drop_table("freeze_windows")
    op.drop_table("deployment_approvals")
    op.drop_index("ix_deployments_approval_expires_at", table_name="deployments")
    op.execute("UPDATE deployments SET status = 'cancelled' WHERE status = 'pending_approval'")
    op.drop_constraint(op.f("ck_deployments_status"), "deployments", type_="check")
    op.create_check_constraint(
        op.f("ck_deployments_status"),
        "deployments",
        '"status" IS NULL OR ' + _in('"status"', OLD_DEPLOYMENT_STATUSES),
    )
    for column in (
        "freeze_override_reason",
        "freeze_window_id",
        "approval_expires_at",
        "approvals_needed",
    ):
        op.drop_column("deployments", column)
    op.drop_constraint(op.f("ck_templates_approvals_needed"), "templates", type_="check")
    op.drop_constraint(op.f("ck_templates_approver_role"), "templates", type_="check")
    for column in (
        "approval_timeout_minutes",
        "allow_self_approval",
        "approver_role",
        "approval_required",
        "approvals_needed",
    ):
        op.drop_column("templates", column)
    op.drop_table("notification_rule_states")
    op.drop_table("notification_attempts")
    op.drop_table("notification_deliveries")
    op.drop_table("notification_rules")
    op.drop_table("notification_channels")
