"""custom domains: a checked status instead of a verified flag

An admin adds a custom domain; DNS checks then make it verified (served) or failed (with the
reason shown to the admin), and re-check it periodically. Domains registered before this (by an
operator, on the command line or with the demo) stay verified and are never re-checked.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-16 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_domains") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=True))
        batch.add_column(
            sa.Column("reason", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("detail", sa.String(length=1000), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("dns_checked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE tenant_domains SET status = CASE WHEN verified THEN 'verified' ELSE 'pending' END"
    )
    # No server default for the status: every insert must say whether a domain is served.
    with op.batch_alter_table("tenant_domains") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), nullable=False)
        batch.drop_column("verified")


def downgrade() -> None:
    with op.batch_alter_table("tenant_domains") as batch:
        batch.add_column(sa.Column("verified", sa.Boolean(), nullable=True))
    op.execute("UPDATE tenant_domains SET verified = (status = 'verified')")
    with op.batch_alter_table("tenant_domains") as batch:
        batch.alter_column("verified", existing_type=sa.Boolean(), nullable=False)
        batch.drop_column("dns_checked")
        batch.drop_column("checked_at")
        batch.drop_column("detail")
        batch.drop_column("reason")
        batch.drop_column("status")
