"""Migrations build the whole schema from an empty database, on SQLite and PostgreSQL."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.core.embedded.core import EmbeddedCore
from portal.core.embedded.schema import metadata

EXPECTED_TABLES = {
    "tenants",
    "tenant_domains",
    "agents",
    "organizations",
    "customers",
    "departments",
    "tickets",
    "ticket_replies",
    "ratings",
    "conversations",
    "chat_messages",
    "attachments",
    "kb_categories",
    "kb_articles",
    "kb_feedback",
    "kb_missed_searches",
    "forms",
    "form_fields",
    "kb_deflections",
    "used_tokens",
    "canned_responses",
    "sessions",
    "widget_keys",
    "ticket_numbers",
    "core_events",
    "core_events_horizon",
    "core_webhooks",
}


async def test_migrations_from_empty_match_the_schema(empty_database_url):
    core = EmbeddedCore(empty_database_url)
    await core.start()
    try:
        async with core.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
            version = (
                await conn.execute(sa.text("select version_num from alembic_version"))
            ).scalar()
    finally:
        await core.close()
    assert EXPECTED_TABLES <= tables
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
    assert version == "0010"


async def test_starting_twice_is_harmless(database_url):
    for _ in range(2):
        core = EmbeddedCore(database_url)
        await core.start()
        await core.close()
