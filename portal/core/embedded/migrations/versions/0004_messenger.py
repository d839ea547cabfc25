"""messenger: conversations by visitor id, chat message details, canned responses

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Columns added to tables that may hold rows carry a server default so that the ALTER succeeds.
CONVERSATION_COLUMNS: list[sa.Column[object]] = [
    sa.Column("visitor_name", sa.String(length=200), nullable=False, server_default=""),
    sa.Column("visitor_email", sa.String(length=320), nullable=False, server_default=""),
    sa.Column("subject", sa.String(length=200), nullable=False, server_default=""),
    sa.Column("last_message_id", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_message_preview", sa.String(length=120), nullable=False, server_default=""),
    sa.Column("visitor_read_id", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("agent_read_id", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("ticket_through_id", sa.Integer(), nullable=True),
    sa.Column("idempotency_key", sa.String(length=200), nullable=False, server_default=""),
]


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_visitor")
        batch_op.alter_column(
            "visitor_token_hash",
            new_column_name="visitor_id",
            existing_type=sa.String(length=64),
            existing_nullable=False,
        )
        for column in CONVERSATION_COLUMNS:
            batch_op.add_column(column)
    # Nothing wrote conversations before this revision; should a row exist, give it a unique key.
    op.execute("UPDATE conversations SET idempotency_key = 'legacy-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_conversations_tenant_idempotency", ["tenant_id", "idempotency_key"]
        )
        batch_op.create_index("ix_conversations_visitor", ["tenant_id", "visitor_id"], unique=False)
        batch_op.create_index(
            "ix_conversations_customer", ["tenant_id", "customer_id"], unique=False
        )
        batch_op.create_index("ix_conversations_updated", ["tenant_id", "updated_at"], unique=False)

    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("author_name", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("internal", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(
            "ix_chat_messages_conversation", ["conversation_id", "id"], unique=False
        )

    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index("ix_attachments_message", ["message_id"], unique=False)

    op.create_table(
        "canned_responses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("shortcut", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_canned_responses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_responses")),
        sa.UniqueConstraint("tenant_id", "shortcut", name="uq_canned_responses_tenant_shortcut"),
    )


def downgrade() -> None:
    op.drop_table("canned_responses")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_attachments_message")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_messages_conversation")
        batch_op.drop_column("internal")
        batch_op.drop_column("author_name")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_updated")
        batch_op.drop_index("ix_conversations_customer")
        batch_op.drop_index("ix_conversations_visitor")
        batch_op.drop_constraint("uq_conversations_tenant_idempotency", type_="unique")
        for column in reversed(CONVERSATION_COLUMNS):
            batch_op.drop_column(column.name)
        batch_op.alter_column(
            "visitor_id",
            new_column_name="visitor_token_hash",
            existing_type=sa.String(length=64),
            existing_nullable=False,
        )
        batch_op.create_index(
            "ix_conversations_visitor", ["tenant_id", "visitor_token_hash"], unique=False
        )
