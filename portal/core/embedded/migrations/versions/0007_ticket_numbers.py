"""ticket numbers: a per-tenant counter

A new ticket's number used to be `max(number) + 1` over the tenant's tickets, read in the same
transaction and retried when two tickets raced for it. A counter row per tenant hands out the
next number with one upsert instead; it starts where each tenant's tickets end.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_numbers",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_ticket_numbers_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_ticket_numbers"),
    )
    # Tenants without tickets get their row with their first ticket.
    op.execute(
        "INSERT INTO ticket_numbers (tenant_id, last_number)"
        " SELECT tenant_id, max(number) FROM tickets GROUP BY tenant_id"
    )


def downgrade() -> None:
    op.drop_table("ticket_numbers")
