"""widget identity: signing keys per tenant; customers' external ids

A company's server signs a short-lived JWT for its signed-in user; the keys that may sign it are
kept per tenant (several at once, so they can be rotated), and the user's id in the company's
system finds the one customer record their chats and tickets attach to.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "widget_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("alg", sa.String(length=10), nullable=False),
        sa.Column("secret", sa.String(length=200)),
        sa.Column("public_key", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_widget_keys_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_widget_keys"),
        sa.UniqueConstraint("tenant_id", "kid", name="uq_widget_keys_tenant_kid"),
    )
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("external_id", sa.String(length=200)))
        batch.create_unique_constraint(
            "uq_customers_tenant_external_id", ["tenant_id", "external_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint("uq_customers_tenant_external_id", type_="unique")
        batch.drop_column("external_id")
    op.drop_table("widget_keys")
