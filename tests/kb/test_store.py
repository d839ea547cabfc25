"""The knowledge base's read side: view counts buffered, then written in small batches."""

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from portal.core.embedded import schema
from portal.core.embedded.core import EmbeddedCore
from portal.kb.store import VIEW_BATCH, KnowledgeBase

pytestmark = pytest.mark.both_databases


class Writes:
    """The transactions committed and the view-count UPDATEs run on a core's engine."""

    def __init__(self, core: EmbeddedCore) -> None:
        self.engine = core.engine.sync_engine
        self.commits = 0
        self.updates: list[int] = []  # rows given to each UPDATE of kb_articles
        self.fail_update: int | None = None  # the number of the UPDATE to fail, from 1
        sa.event.listen(self.engine, "commit", self._commit)
        sa.event.listen(self.engine, "before_cursor_execute", self._execute)

    def _commit(self, conn: Any) -> None:
        self.commits += 1

    def _execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("UPDATE KB_ARTICLES"):
            self.updates.append(len(parameters) if executemany else 1)
            if len(self.updates) == self.fail_update:
                raise RuntimeError("the database went away")

    def close(self) -> None:
        sa.event.remove(self.engine, "commit", self._commit)
        sa.event.remove(self.engine, "before_cursor_execute", self._execute)


REST = VIEW_BATCH // 2 + 1  # a last batch that is not full


@pytest.fixture
async def articles(core: EmbeddedCore) -> tuple[int, list[int]]:
    """A tenant with 2 * VIEW_BATCH + REST articles: (tenant id, article ids)."""
    tenant = await core.tenants.create_tenant("acme", "Acme")
    now = datetime.now(UTC)
    rows = [
        dict(
            tenant_id=tenant.id,
            language="en",
            slug=f"a-{n}",
            title=f"Article {n}",
            body_md="Body",
            published=True,
            views=0,
            revision=n + 1,
            created_at=now,
            updated_at=now,
        )
        for n in range(2 * VIEW_BATCH + REST)
    ]
    async with core.engine.begin() as conn:
        await conn.execute(schema.kb_articles.insert(), rows)
    async with core.engine.connect() as conn:
        ids = (await conn.execute(sa.select(schema.kb_articles.c.id))).scalars().all()
    return tenant.id, sorted(ids)


async def stored_views(core: EmbeddedCore) -> dict[int, int]:
    a = schema.kb_articles.c
    async with core.engine.connect() as conn:
        return {row.id: row.views for row in await conn.execute(sa.select(a.id, a.views))}


@pytest.fixture
def writes(core: EmbeddedCore):
    counted = Writes(core)
    yield counted
    counted.close()


async def test_a_flush_writes_views_in_batches_each_one_statement_and_one_transaction(
    core, articles, writes
):
    tenant_id, ids = articles
    kb = KnowledgeBase(core)
    for n, article_id in enumerate(ids):
        for _ in range(n % 3 + 1):
            kb.count_view(tenant_id, article_id)
    await kb.flush_views()
    # Three writes (two full batches and the rest), so the loop is never held for all of them.
    assert writes.updates == [VIEW_BATCH, VIEW_BATCH, REST]
    assert writes.commits == 3
    assert await stored_views(core) == {a: n % 3 + 1 for n, a in enumerate(ids)}


async def test_views_of_a_failed_write_are_kept_and_none_counted_twice(core, articles, writes):
    tenant_id, ids = articles
    kb = KnowledgeBase(core)
    for article_id in ids:
        kb.count_view(tenant_id, article_id)
    writes.fail_update = 2  # the first batch is stored, the second fails
    await kb.flush_views()
    assert sum((await stored_views(core)).values()) == VIEW_BATCH
    writes.fail_update = None
    await kb.flush_views()  # the second and third batches, kept from the failed flush
    assert await stored_views(core) == dict.fromkeys(ids, 1)
    await kb.flush_views()  # nothing left to write
    assert writes.updates == [VIEW_BATCH, VIEW_BATCH, VIEW_BATCH, REST]
