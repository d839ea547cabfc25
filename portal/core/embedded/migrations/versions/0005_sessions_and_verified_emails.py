"""server-side sessions; customers' verified emails

Sign-out must end a session at once, everywhere: sessions are rows, the cookie only names one.
A customer's email counts as verified once they followed a magic link sent to it; a chat's email
only when it is the signed-in customer's own, verified one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_sessions_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_subject", "sessions", ["tenant_id", "kind", "subject_id"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("email_verified_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column(
                "visitor_email_verified", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("visitor_email_verified")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("email_verified_at")
    op.drop_index("ix_sessions_subject", table_name="sessions")
    op.drop_table("sessions")
