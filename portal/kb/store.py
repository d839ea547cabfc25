"""Read side of the knowledge base: cached article pages and buffered view counts."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass

from portal.core.contract import Article, Category, HelpdeskCore, NotFound
from portal.kb.markdown import MarkdownCache, plain_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArticlePage:
    article: Article
    html: str
    description: str
    breadcrumb: tuple[Category, ...]
    translations: tuple[Article, ...]


class KnowledgeBase:
    """Caches what an article page needs, so a page view costs no database round trip.

    Entries for a tenant are dropped on every `article.changed` event for it; view counts are
    buffered in memory and written in one transaction every few seconds.
    """

    def __init__(self, core: HelpdeskCore, max_pages: int = 4096) -> None:
        self.core = core
        self.markdown = MarkdownCache()
        self._pages: OrderedDict[tuple[int, str, str], ArticlePage] = OrderedDict()
        self._max_pages = max_pages
        self._views: dict[int, Counter[int]] = {}

    async def article_page(self, tenant_id: int, language: str, slug: str) -> ArticlePage:
        """The published article with its breadcrumb and translations; NotFound otherwise."""
        key = (tenant_id, language, slug)
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        article = await self.core.kb.get_article_by_slug(tenant_id, language, slug)
        if not article.published:
            raise NotFound("no such article")
        page = ArticlePage(
            article=article,
            html=self.markdown.render(article),
            description=plain_text(article.body_md, 160),
            breadcrumb=tuple(await self.breadcrumb(tenant_id, article.category_id)),
            translations=tuple(
                a for a in await self.core.kb.translations(tenant_id, slug) if a.id != article.id
            ),
        )
        self._pages[key] = page
        if len(self._pages) > self._max_pages:
            self._pages.popitem(last=False)
        return page

    async def breadcrumb(self, tenant_id: int, category_id: int | None) -> list[Category]:
        """Categories from the top-most parent down to `category_id`."""
        trail: list[Category] = []
        seen: set[int] = set()
        while category_id is not None and category_id not in seen:
            seen.add(category_id)
            try:
                category = await self.core.kb.get_category(tenant_id, category_id)
            except NotFound:
                break
            trail.append(category)
            category_id = category.parent_id
        return list(reversed(trail))

    def invalidate(self, tenant_id: int) -> None:
        for key in [k for k in self._pages if k[0] == tenant_id]:
            del self._pages[key]

    def invalidate_all(self) -> None:
        self._pages.clear()

    def count_view(self, tenant_id: int, article_id: int) -> None:
        self._views.setdefault(tenant_id, Counter())[article_id] += 1

    async def flush_views(self) -> None:
        """Write buffered view counts to the core; counts survive a failed write."""
        pending, self._views = self._views, {}
        for tenant_id, counts in pending.items():
            try:
                await self.core.kb.add_article_views(tenant_id, dict(counts))
            except Exception:
                log.exception("could not store article views; keeping them for the next flush")
                self._views.setdefault(tenant_id, Counter()).update(counts)

    async def flush_views_forever(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush_views()
