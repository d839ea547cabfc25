"""ticket list indexes

Ticket lists page through one customer's, one organization's or one tenant's tickets, newest
first. These indexes let a page and its count be read from the index alone; they replace
`ix_tickets_customer`, which is their prefix.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:10:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIST_COLUMNS = ["updated_at", "id", "status"]


def upgrade() -> None:
    op.drop_index("ix_tickets_customer", table_name="tickets")
    op.create_index(
        "ix_tickets_customer_list", "tickets", ["tenant_id", "customer_id", *LIST_COLUMNS]
    )
    op.create_index(
        "ix_tickets_organization_list",
        "tickets",
        ["tenant_id", "organization_id", *LIST_COLUMNS],
    )
    op.create_index("ix_tickets_tenant_list", "tickets", ["tenant_id", *LIST_COLUMNS])


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_list", table_name="tickets")
    op.drop_index("ix_tickets_organization_list", table_name="tickets")
    op.drop_index("ix_tickets_customer_list", table_name="tickets")
    op.create_index("ix_tickets_customer", "tickets", ["tenant_id", "customer_id"])
