"""sso: identity providers, group-to-role rules, linked identities, log-in states; log-in policy

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "shipyard_app"
TENANT_DEFAULT = sa.text("nullif(current_setting('shipyard.tenant_id', true), '')::uuid")
NEW_TENANT_TABLES = ("sso_providers", "sso_role_rules", "sso_identities", "sso_login_states")
TOUCHED_TABLES = ("sso_providers", "sso_role_rules", "sso_identities")
ROLES = ("admin", "developer", "viewer")


def _in(column: str, values: Sequence[str]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f'"{column}" IS NULL OR "{column}" IN ({quoted})'


def _id() -> sa.Column[object]:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _tenant() -> sa.Column[object]:
    return sa.Column("tenant_id", sa.UUID(), server_default=TENANT_DEFAULT, nullable=False)


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
    # --- the tenant's log-in policy and why an account is disabled ----------------------------
    op.add_column("tenants", sa.Column("login_slug", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_tenants_login_slug"), "tenants", ["login_slug"])
    op.add_column("tenants", sa.Column("sso_default_role", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_tenants_sso_default_role"), "tenants", _in("sso_default_role", ROLES)
    )
    op.add_column(
        "tenants",
        sa.Column("sso_required", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("tenants", sa.Column("sso_break_glass_profile_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_tenants_sso_break_glass_profile_id_profiles"),
        "tenants",
        "profiles",
        ["sso_break_glass_profile_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_tenants_sso_break_glass_profile_id"), "tenants", ["sso_break_glass_profile_id"]
    )
    op.add_column("users", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_users_disabled_reason"),
        "users",
        _in("disabled_reason", ("admin", "sso_no_role")),
    )

    op.create_table(
        "sso_providers",
        _id(),
        _tenant(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_by", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint("kind IN ('oidc', 'ldap')", name=op.f("ck_sso_providers_kind")),
        _fk("sso_providers", "tenant_id", "tenants", "CASCADE"),
        _fk("sso_providers", "created_by", "profiles", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_providers")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_sso_providers_tenant_id_name")),
    )
    op.create_index(op.f("ix_sso_providers_tenant_id"), "sso_providers", ["tenant_id"])
    op.create_index(op.f("ix_sso_providers_created_by"), "sso_providers", ["created_by"])

    op.create_table(
        "sso_role_rules",
        _id(),
        _tenant(),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("group", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("provider_id", sa.UUID(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "role IN ('admin', 'developer', 'viewer')", name=op.f("ck_sso_role_rules_role")
        ),
        sa.CheckConstraint("position >= 0", name=op.f("ck_sso_role_rules_position")),
        _fk("sso_role_rules", "tenant_id", "tenants", "CASCADE"),
        _fk("sso_role_rules", "provider_id", "sso_providers", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_role_rules")),
    )
    op.create_index(op.f("ix_sso_role_rules_tenant_id"), "sso_role_rules", ["tenant_id"])
    op.create_index(op.f("ix_sso_role_rules_provider_id"), "sso_role_rules", ["provider_id"])

    op.create_table(
        "sso_identities",
        _id(),
        _tenant(),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("profile_id", sa.UUID(), nullable=False),
        sa.Column(
            "groups", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("role_rule_id", sa.UUID(), nullable=True),
        sa.Column("role_source", sa.Text(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "role_source IS NULL OR role_source IN ('rule', 'default')",
            name=op.f("ck_sso_identities_source"),
        ),
        _fk("sso_identities", "tenant_id", "tenants", "CASCADE"),
        _fk("sso_identities", "provider_id", "sso_providers", "CASCADE"),
        _fk("sso_identities", "profile_id", "profiles", "CASCADE"),
        _fk("sso_identities", "role_rule_id", "sso_role_rules", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_identities")),
        sa.UniqueConstraint(
            "provider_id", "subject", name=op.f("uq_sso_identities_provider_id_subject")
        ),
    )
    for column in ("tenant_id", "provider_id", "profile_id", "role_rule_id"):
        op.create_index(op.f(f"ix_sso_identities_{column}"), "sso_identities", [column])

    op.create_table(
        "sso_login_states",
        _id(),
        _tenant(),
        sa.Column("provider_id", sa.UUID(), nullable=False),
        sa.Column("state_hash", sa.Text(), nullable=False),
        sa.Column("browser_hash", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("next_path", sa.Text(), server_default="/", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("created_at"),
        _fk("sso_login_states", "tenant_id", "tenants", "CASCADE"),
        _fk("sso_login_states", "provider_id", "sso_providers", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_login_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_sso_login_states_state_hash")),
    )
    op.create_index(op.f("ix_sso_login_states_tenant_id"), "sso_login_states", ["tenant_id"])
    op.create_index(op.f("ix_sso_login_states_provider_id"), "sso_login_states", ["provider_id"])

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
    op.drop_table("sso_login_states")
    op.drop_table("sso_identities")
    op.drop_table("sso_role_rules")
    op.drop_table("sso_providers")
    op.drop_constraint(op.f("ck_users_disabled_reason"), "users", type_="check")
    op.drop_column("users", "disabled_reason")
    op.drop_constraint(
        op.f("fk_tenants_sso_break_glass_profile_id_profiles"), "tenants", type_="foreignkey"
    )
    op.drop_index(op.f("ix_tenants_sso_break_glass_profile_id"), table_name="tenants")
    op.drop_column("tenants", "sso_break_glass_profile_id")
    op.drop_column("tenants", "sso_required")
    op.drop_constraint(op.f("ck_tenants_sso_default_role"), "tenants", type_="check")
    op.drop_column("tenants", "sso_default_role")
    op.drop_constraint(op.f("uq_tenants_login_slug"), "tenants", type_="unique")
    op.drop_column("tenants", "login_slug")
