"""core API: per-tenant API keys and idempotency records

`portal core` serves the contract over HTTP: each tenant's bearer keys (stored hashed,
revocable) and the Idempotency-Key records that make retried writes answer once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "core_api_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), server_default="", nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_core_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_core_api_keys")),
    )
    op.create_index("ix_core_api_keys_tenant", "core_api_keys", ["tenant_id"])
    op.create_table(
        "core_idempotency",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_core_idempotency_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_core_idempotency")),
    )
    op.create_index("ix_core_idempotency_created", "core_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_core_idempotency_created", table_name="core_idempotency")
    op.drop_table("core_idempotency")
    op.drop_index("ix_core_api_keys_tenant", table_name="core_api_keys")
    op.drop_table("core_api_keys")
