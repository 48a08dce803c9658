"""hosts: pending host key for explicit acceptance, one name per tenant, search by name

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The key a host presented when it did not match the trusted one, until an admin accepts it.
    op.add_column("hosts", sa.Column("pending_host_key_fingerprint", sa.Text(), nullable=True))
    op.create_unique_constraint("uq_hosts_tenant_id_name", "hosts", ["tenant_id", "name"])
    op.create_index("ix_hosts_tenant_id_created_at_id", "hosts", ["tenant_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_hosts_tenant_id_created_at_id", table_name="hosts")
    op.drop_constraint("uq_hosts_tenant_id_name", "hosts", type_="unique")
    op.drop_column("hosts", "pending_host_key_fingerprint")
