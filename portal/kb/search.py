"""Knowledge-base search: one whoosh index per tenant, kept current from the core's change feed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from portal.core.contract import EVENTS_RESUMED, Article, Event, HelpdeskCore
from portal.kb.index import SearchHit, TenantIndex
from portal.kb.store import LRU

logger = logging.getLogger(__name__)


# What `SearchService.follow_events` acts on (and EVENTS_RESUMED, which every subscriber hears).
SEARCH_EVENTS = frozenset({"article.changed"})


class SearchService:
    """Every tenant's index, kept current from `articles_changed_since` and core events."""

    def __init__(
        self,
        index_root: Path,
        core: HelpdeskCore,
        *,
        batch_size: int = 1000,
        commit_size: int = 5000,
        max_results: int = 2048,
    ) -> None:
        self.index_root = Path(index_root)
        self.core = core
        self.batch_size = batch_size
        self.commit_size = commit_size
        self._indexes: dict[int, TenantIndex] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._results: LRU[tuple[int, int, str, str | None, int], tuple[SearchHit, ...]] = LRU(
            max_results
        )

    def index_for(self, tenant_id: int) -> TenantIndex:
        """The tenant's index, opened (or created) on first use."""
        index = self._indexes.get(tenant_id)
        if index is None:
            index = self._indexes[tenant_id] = TenantIndex(self.index_root / str(tenant_id))
        return index

    def _lock_for(self, tenant_id: int) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    async def _catch_up(self, tenant_id: int) -> int:
        index = self.index_for(tenant_id)
        cursor = index.cursor
        applied = 0
        pending: list[Article] = []
        while True:
            articles, next_cursor = await self.core.kb.articles_changed_since(
                tenant_id, cursor, self.batch_size
            )
            done = not articles or next_cursor <= cursor
            pending.extend(articles)
            cursor = max(cursor, next_cursor)
            # Fewer, larger commits: each commit is a segment, and merging segments costs as
            # much as indexing, so a full rebuild in 1,000-article commits took 50% longer.
            if pending and (done or len(pending) >= self.commit_size):
                await asyncio.to_thread(index.apply, pending)
                applied += len(pending)
                pending = []
            if done:
                return applied

    async def catch_up(self, tenant_id: int) -> int:
        """Apply every article change since the index's cursor; the number of changes applied."""
        async with self._lock_for(tenant_id):
            return await self._catch_up(tenant_id)

    async def rebuild(self, tenant_id: int) -> int:
        """Empty the tenant's index and index every article again."""
        async with self._lock_for(tenant_id):
            await asyncio.to_thread(self.index_for(tenant_id).clear)
            return await self._catch_up(tenant_id)

    def generation(self, tenant_id: int) -> int:
        """A number naming what the tenant's index holds now; changed by every index change."""
        return self.index_for(tenant_id).generation

    def search(
        self, tenant_id: int, query: str, language: str | None = None, limit: int = 10
    ) -> list[SearchHit]:
        """Search one tenant's published articles.

        Results are kept per query and state of the index: visitors ask the same questions,
        and the type-ahead asks the same prefixes. A change of the index changes its
        generation, so results from before it are never found again.
        """
        index = self.index_for(tenant_id)
        key = (tenant_id, index.generation, query, language, limit)
        hits = self._results.get(key)
        if hits is None:
            hits = tuple(index.search(query, language=language, limit=limit))
            self._results.put(key, hits)
        return list(hits)

    async def follow_events(self, events: AsyncIterator[Event] | None = None) -> None:
        """Catch up a tenant's index whenever an article changes (run as a task).

        `events` defaults to the core's own; the app passes the events of every process."""
        events = events if events is not None else self.core.events()
        try:
            async for event in events:
                if event.type == "article.changed":
                    tenants = [event.tenant_id]
                elif event.type == EVENTS_RESUMED:  # changes may have gone unheard
                    tenants = list(self._indexes)
                else:
                    continue
                for tenant_id in tenants:
                    try:
                        await self.catch_up(tenant_id)
                    except Exception:
                        logger.exception("search catch-up failed for tenant %s", tenant_id)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def close(self) -> None:
        """Close every open index."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
        self._results.clear()
