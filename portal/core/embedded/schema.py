"""The embedded core's tables (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=True)


def _tenant() -> Column:
    return Column(
        "tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )


def _created() -> Column:
    return Column("created_at", DateTime(timezone=True), nullable=False)


tenants = Table(
    "tenants",
    metadata,
    _id(),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("logo_url", String(1000), nullable=False, default=""),
    Column("primary_color", String(7), nullable=False, default="#1f6feb"),
    Column("default_locale", String(16), nullable=False, default="en"),
    Column("settings", JSON, nullable=False, default=dict),
    # Bumped in the same transaction as every article change: the search index's cursor.
    Column("kb_revision", Integer, nullable=False, default=0),
    _created(),
)

tenant_domains = Table(
    "tenant_domains",
    metadata,
    _id(),
    _tenant(),
    Column("domain", String(253), nullable=False, unique=True),
    # pending | verified | failed; only verified domains are served (contract `Domain`).
    Column("status", String(16), nullable=False),
    Column("reason", String(32), nullable=False, default=""),
    Column("detail", String(1000), nullable=False, default=""),
    Column("checked_at", DateTime(timezone=True)),
    # False: registered by an operator, served as is and never re-checked by DNS.
    Column("dns_checked", Boolean, nullable=False, default=False),
    _created(),
)

agents = Table(
    "agents",
    metadata,
    _id(),
    _tenant(),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(300), nullable=False),
    Column("role", String(20), nullable=False, default="agent"),
    Column("presence", String(20), nullable=False, default="offline"),
    _created(),
    UniqueConstraint("tenant_id", "email", name="uq_agents_tenant_email"),
)

organizations = Table(
    "organizations",
    metadata,
    _id(),
    _tenant(),
    Column("name", String(200), nullable=False),
    Column("domain", String(253), nullable=False, default=""),
    _created(),
)

customers = Table(
    "customers",
    metadata,
    _id(),
    _tenant(),
    Column("organization_id", Integer, ForeignKey("organizations.id", ondelete="SET NULL")),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    # Set when the customer first proved the address (a magic link they followed); until then
    # an agent sees the address marked as unverified.
    Column("email_verified_at", DateTime(timezone=True)),
    _created(),
    # The company's own id for the user, from a signed widget identity (migration 0006); NULLs
    # never collide, so the constraint holds only where it is set, on SQLite and PostgreSQL.
    Column("external_id", String(200)),
    UniqueConstraint("tenant_id", "email", name="uq_customers_tenant_email"),
    UniqueConstraint("tenant_id", "external_id", name="uq_customers_tenant_external_id"),
)

departments = Table(
    "departments",
    metadata,
    _id(),
    _tenant(),
    Column("name", String(200), nullable=False),
    _created(),
)

tickets = Table(
    "tickets",
    metadata,
    _id(),
    _tenant(),
    Column("number", Integer, nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("organization_id", Integer, ForeignKey("organizations.id", ondelete="SET NULL")),
    Column("department_id", Integer, ForeignKey("departments.id", ondelete="SET NULL")),
    Column("assignee_agent_id", Integer, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("subject", String(500), nullable=False),
    Column("kind", String(20), nullable=False, default="ticket"),
    Column("status", String(20), nullable=False, default="open"),
    Column("priority", String(20), nullable=False, default="normal"),
    Column("source", String(20), nullable=False, default="web"),
    Column("custom_fields", JSON, nullable=False, default=dict),
    Column("idempotency_key", String(200), nullable=False),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "number", name="uq_tickets_tenant_number"),
    UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency"),
    # Ticket lists page newest first; these cover a page and its count (migration 0003).
    Index("ix_tickets_customer_list", "tenant_id", "customer_id", "updated_at", "id", "status"),
    Index(
        "ix_tickets_organization_list",
        "tenant_id",
        "organization_id",
        "updated_at",
        "id",
        "status",
    ),
    Index("ix_tickets_tenant_list", "tenant_id", "updated_at", "id", "status"),
)

# The last ticket number each tenant gave out (migration 0007): one upsert hands out the next in
# the ticket's own transaction, where `max(number) + 1` read the tenant's tickets and raced.
ticket_numbers = Table(
    "ticket_numbers",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("last_number", Integer, nullable=False),
)

ticket_replies = Table(
    "ticket_replies",
    metadata,
    _id(),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
    Column("author_type", String(20), nullable=False),
    Column("author_id", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("internal", Boolean, nullable=False, default=False),
    Column("idempotency_key", String(200), nullable=False),
    _created(),
    UniqueConstraint("ticket_id", "idempotency_key", name="uq_ticket_replies_idempotency"),
)

ratings = Table(
    "ratings",
    metadata,
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("good", Boolean, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    _id(),
    _tenant(),
    Column("visitor_id", String(64), nullable=False, default=""),
    Column("customer_id", Integer, ForeignKey("customers.id", ondelete="SET NULL")),
    Column("assignee_agent_id", Integer, ForeignKey("agents.id", ondelete="SET NULL")),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="SET NULL")),
    Column("status", String(20), nullable=False, default="waiting"),
    Column("visitor_name", String(200), nullable=False, default=""),
    Column("visitor_email", String(320), nullable=False, default=""),
    # True only when a signed-in customer's own, proved address came with the conversation.
    Column("visitor_email_verified", Boolean, nullable=False, default=False),
    Column("subject", String(200), nullable=False, default=""),
    Column("last_message_id", Integer, nullable=False, default=0),
    Column("last_message_preview", String(120), nullable=False, default=""),
    Column("visitor_read_id", Integer, nullable=False, default=0),
    Column("agent_read_id", Integer, nullable=False, default=0),
    # The highest message id in the ticket's transcript, fixed by the first attempt to make the
    # ticket: later visitor messages become ticket replies, so none is lost or written twice.
    Column("ticket_through_id", Integer),
    Column("idempotency_key", String(200), nullable=False),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "idempotency_key", name="uq_conversations_tenant_idempotency"),
    Index("ix_conversations_visitor", "tenant_id", "visitor_id"),
    Index("ix_conversations_customer", "tenant_id", "customer_id"),
    Index("ix_conversations_updated", "tenant_id", "updated_at"),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    _id(),
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("author_type", String(20), nullable=False),
    Column("author_id", Integer),
    Column("author_name", String(200), nullable=False, default=""),
    Column("body", Text, nullable=False),
    Column("internal", Boolean, nullable=False, default=False),
    Column("client_id", String(100), nullable=False),
    _created(),
    UniqueConstraint("conversation_id", "client_id", name="uq_chat_messages_client_id"),
    Index("ix_chat_messages_conversation", "conversation_id", "id"),
)

canned_responses = Table(
    "canned_responses",
    metadata,
    _id(),
    _tenant(),
    Column("shortcut", String(100), nullable=False),
    Column("body", Text, nullable=False),
    _created(),
    UniqueConstraint("tenant_id", "shortcut", name="uq_canned_responses_tenant_shortcut"),
)

attachments = Table(
    "attachments",
    metadata,
    _id(),
    _tenant(),
    Column("ticket_id", Integer, ForeignKey("tickets.id", ondelete="CASCADE")),
    Column("reply_id", Integer, ForeignKey("ticket_replies.id", ondelete="CASCADE")),
    Column("message_id", Integer, ForeignKey("chat_messages.id", ondelete="CASCADE")),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", Integer, nullable=False),
    Column("storage_key", String(300), nullable=False),
    _created(),
    Index("ix_attachments_message", "message_id"),
)

kb_categories = Table(
    "kb_categories",
    metadata,
    _id(),
    _tenant(),
    Column("parent_id", Integer, ForeignKey("kb_categories.id", ondelete="SET NULL")),
    Column("language", String(16), nullable=False),
    Column("slug", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("position", Integer, nullable=False, default=0),
    _created(),
    UniqueConstraint("tenant_id", "language", "slug", name="uq_kb_categories_tenant_lang_slug"),
)

kb_articles = Table(
    "kb_articles",
    metadata,
    _id(),
    _tenant(),
    Column("category_id", Integer, ForeignKey("kb_categories.id", ondelete="SET NULL")),
    Column("language", String(16), nullable=False),
    Column("slug", String(200), nullable=False),
    Column("title", String(300), nullable=False),
    Column("body_md", Text, nullable=False),
    Column("published", Boolean, nullable=False, default=True),
    Column("views", Integer, nullable=False, default=0),
    Column("revision", Integer, nullable=False, default=0),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "language", "slug", name="uq_kb_articles_tenant_lang_slug"),
    Index("ix_kb_articles_revision", "tenant_id", "revision"),
)

kb_feedback = Table(
    "kb_feedback",
    metadata,
    _id(),
    _tenant(),
    Column("article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
    Column("helpful", Boolean, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("idempotency_key", String(200), nullable=False),
    _created(),
    UniqueConstraint("tenant_id", "idempotency_key", name="uq_kb_feedback_idempotency"),
)

kb_missed_searches = Table(
    "kb_missed_searches",
    metadata,
    _id(),
    _tenant(),
    Column("query", String(200), nullable=False),
    Column("language", String(16), nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    UniqueConstraint("tenant_id", "language", "query", name="uq_kb_missed_searches_query"),
)

forms = Table(
    "forms",
    metadata,
    _id(),
    _tenant(),
    Column("department_id", Integer, ForeignKey("departments.id", ondelete="SET NULL")),
    Column("title", String(200), nullable=False),
    Column("kind", String(20), nullable=False, default="ticket"),
    _created(),
)

form_fields = Table(
    "form_fields",
    metadata,
    _id(),
    Column("form_id", Integer, ForeignKey("forms.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(100), nullable=False),
    Column("label", String(200), nullable=False),
    Column("type", String(20), nullable=False),
    Column("required", Boolean, nullable=False, default=False),
    Column("help_text", Text, nullable=False, default=""),
    Column("options", JSON, nullable=False, default=list),
    # Empty means the field shows for every department.
    Column("department_ids", JSON, nullable=False, default=list),
    Column("position", Integer, nullable=False, default=0),
    UniqueConstraint("form_id", "key", name="uq_form_fields_form_key"),
)

kb_deflections = Table(
    "kb_deflections",
    metadata,
    _id(),
    _tenant(),
    # One visit to a form: the suggestions opened during it, and whether a ticket followed.
    Column("visit_key", String(64), nullable=False),
    Column("article_id", Integer, ForeignKey("kb_articles.id", ondelete="CASCADE"), nullable=False),
    Column("query", String(200), nullable=False, default=""),
    Column("ticket_sent", Boolean, nullable=False, default=False),
    _created(),
    UniqueConstraint("tenant_id", "visit_key", "article_id", name="uq_kb_deflections_visit"),
)

used_tokens = Table(
    "used_tokens",
    metadata,
    # Single-use signed tokens (magic links): the id of each one spent, until it would expire.
    Column("token_id", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # Sign-in sessions of agents and customers. The cookie holds a random token; only its
    # SHA-256 is stored, so a copy of this table signs nobody in. Deleting a row ends a session
    # at once, in every process.
    Column("id", String(64), primary_key=True),
    _tenant(),
    Column("kind", String(10), nullable=False),  # "agent" | "customer"
    Column("subject_id", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _created(),
    Index("ix_sessions_subject", "tenant_id", "kind", "subject_id"),
)

widget_keys = Table(
    "widget_keys",
    metadata,
    # Keys that sign a tenant's widget identity tokens (JWT), several at once for rotation:
    # an HS256 secret made here, or a company's ES256 / EdDSA public key (PEM).
    _id(),
    _tenant(),
    Column("kid", String(64), nullable=False),
    Column("alg", String(10), nullable=False),  # "HS256" | "ES256" | "EdDSA"
    Column("secret", String(200)),  # HS256 only
    Column("public_key", Text),  # ES256 / EdDSA only
    _created(),
    UniqueConstraint("tenant_id", "kid", name="uq_widget_keys_tenant_kid"),
)

core_api_keys = Table(
    "core_api_keys",
    metadata,
    # Bearer keys of the core's HTTP API, one tenant each. The key is "core_<id>.<secret>"; only
    # the secret's SHA-256 is stored (the secret is 32 random bytes, so no slow hash is needed).
    Column("id", String(32), primary_key=True),
    _tenant(),
    Column("name", String(100), nullable=False, server_default=""),
    Column("secret_hash", String(64), nullable=False),
    _created(),
    Column("revoked_at", DateTime(timezone=True)),
    Index("ix_core_api_keys_tenant", "tenant_id"),
)

core_idempotency = Table(
    "core_idempotency",
    metadata,
    # One row per write sent with an Idempotency-Key: inserted "running" before the write (the
    # primary key lets exactly one of two racing requests in), then the answer stored, so that
    # a retry gets it replayed. Kept at least 24 hours.
    _tenant(),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # SHA-256 of method, path and body
    Column("state", String(10), nullable=False),  # "running" | "done"
    Column("status", Integer),
    Column("body", Text),
    Column("content_type", String(100)),
    _created(),
    # A "running" row older than this was left by a crashed process and may be taken over.
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "key"),
    Index("ix_core_idempotency_created", "created_at"),
)

core_events = Table(
    "core_events",
    metadata,
    # The journal of the core's events, written by `portal core` only (portal/core/journal.py):
    # the events feed reads it and webhooks deliver it. The id is the feed's cursor; it never
    # goes back or gets reused (SQLite's AUTOINCREMENT), even after old rows are purged.
    _id(),
    Column("event_id", String(40), nullable=False),  # the envelope's stable id
    _tenant(),
    Column("type", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    _created(),
    Index("ix_core_events_tenant_cursor", "tenant_id", "id"),
    Index("ix_core_events_created", "created_at"),
    sqlite_autoincrement=True,
)

core_events_horizon = Table(
    "core_events_horizon",
    metadata,
    # One row: the highest cursor purged from the journal. A feed reader whose cursor is older
    # missed events that are gone, and must resync (410).
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("purged_through", Integer, nullable=False),
)

core_webhooks = Table(
    "core_webhooks",
    metadata,
    # Endpoints that get the tenant's events pushed, signed per Standard Webhooks. The secret is
    # kept as given (it signs every delivery); `delivered_through` is the cursor of the last event
    # the endpoint accepted, so delivery resumes in order after an outage or a restart.
    _id(),
    _tenant(),
    Column("url", String(2000), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("delivered_through", Integer, nullable=False),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500), nullable=False, server_default=""),
    Column("disabled_at", DateTime(timezone=True)),  # the endpoint answered 410 Gone
    _created(),
    Index("ix_core_webhooks_tenant", "tenant_id"),
)
