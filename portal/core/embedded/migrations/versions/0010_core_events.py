"""core events: the journal behind the events feed, and webhook endpoints

`portal core` writes the core's events to a journal (the feed's source of truth, its id the
cursor), keeps them a bounded time, and pushes them to each registered webhook endpoint in order.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-20 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "core_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("core_events"),
        sa.PrimaryKeyConstraint("id", name="pk_core_events"),
        # Cursors are never reused, even once purged rows leave the table empty.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_core_events_tenant_cursor", "core_events", ["tenant_id", "id"])
    op.create_index("ix_core_events_created", "core_events", ["created_at"])
    op.create_table(
        "core_events_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("purged_through", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_core_events_horizon"),
    )
    op.create_table(
        "core_webhooks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("delivered_through", sa.Integer(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _tenant_fk("core_webhooks"),
        sa.PrimaryKeyConstraint("id", name="pk_core_webhooks"),
    )
    op.create_index("ix_core_webhooks_tenant", "core_webhooks", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_core_webhooks_tenant", table_name="core_webhooks")
    op.drop_table("core_webhooks")
    op.drop_table("core_events_horizon")
    op.drop_index("ix_core_events_created", table_name="core_events")
    op.drop_index("ix_core_events_tenant_cursor", table_name="core_events")
    op.drop_table("core_events")
