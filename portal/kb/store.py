"""Read side of the knowledge base: cached article pages, whole rendered pages, view counts."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from starlette.responses import Response
from starlette.types import Scope

from portal.compression import GZIPPED_HEADERS, MINIMUM_SIZE, GzippedParts, accepts_gzip
from portal.core.contract import Article, Category, HelpdeskCore, NotFound, Tenant
from portal.kb.markdown import MarkdownCache, html_summary

log = logging.getLogger(__name__)

# Articles whose view counts go in one write. On SQLite each write runs on the event loop
# (`portal.core.embedded.engine`) and every request waits for it: a whole flush in one
# transaction (a hot set of ~1,000 articles every 5 s) held the loop ~0.3 s. Each article's
# count rewrites its whole row's page (the article's text is on it): on a slow machine a batch
# of 200 held the loop 8-12 ms, and one of 50 holds it 2-3 ms.
VIEW_BATCH = 50


async def yield_to_loop() -> None:
    """Let the requests waiting since this one started run before it goes on.

    A page's first view (read, Markdown, template, ~1 ms in all) is work no other request can
    interleave with; under load the event loop runs one such step for every connection in
    turn, so a step's length, times the connections, is how long every request waits. Split
    at its natural seams, a first view holds the loop a third as long at a time.
    """
    await asyncio.sleep(0)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most `size` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)  # (no __dict__: one object fewer for the collector)
class ArticlePage:
    article: Article
    html: str
    description: str
    breadcrumb: tuple[Category, ...]
    translations: tuple[Article, ...]


HTML = b"text/html; charset=utf-8"
JSON = b"application/json"


class KeptAnswer(Response):
    """A 200 with `body` and raw `headers` as they are: a kept page answers often, and
    `Response`'s own start reads its headers through a header object every time."""

    def __init__(self, body: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode()), *headers]


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A page as rendered once for one variant, answered again without rendering."""

    tenant: Tenant  # as the page shows it: a tenant read again and found changed is a miss
    parts: tuple[bytes, ...]  # the page, split where a value made per request goes
    article_id: int | None = None  # the article shown, whose views each answer counts
    found: bool = True  # a search page: whether it found anything
    expires: float = math.inf  # (time.monotonic) for pages showing what no event announces
    gzipped: GzippedParts | None = None  # compressed once, for clients that take gzip

    @classmethod
    def of(cls, tenant: Tenant, parts: tuple[bytes, ...], **details: Any) -> RenderedPage:
        """A page to keep; one large enough to be compressed is compressed now, once."""
        if sum(map(len, parts)) >= MINIMUM_SIZE:
            details["gzipped"] = GzippedParts(parts)
        return cls(tenant, parts, **details)

    def body(self, value: str = "") -> bytes:
        """The page with `value` in every place left for it."""
        return value.encode().join(self.parts)

    def answer(
        self,
        scope: Scope,
        value: str = "",
        content_type: bytes = HTML,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> Response:
        """The page's answer with `value` in its places and `headers` (raw, as sent): gzipped
        as kept for a client that takes gzip (the compression middleware lets an encoded
        answer pass as it is)."""
        if self.gzipped is not None and accepts_gzip(scope):
            body = self.gzipped.body(value.encode())
            return KeptAnswer(body, ((b"content-type", content_type), *GZIPPED_HEADERS, *headers))
        return KeptAnswer(self.body(value), ((b"content-type", content_type), *headers))


Generation = tuple[int, int]
MAX_PAGES = 4096  # rendered pages kept per process (and the other caches' bound)


class KnowledgeBase:
    """Caches what the help center's pages need, so a page view costs no database round trip,
    and the pages themselves as rendered (`rendered`, `keep`).

    Every entry of a tenant is keyed by its generation, which `invalidate` (every
    `article.changed` or `category.changed` event, from any process) advances: entries of an
    older generation are never found again and age out. A page read from the core while a
    change lands is kept under the generation from before its reads, so it is never served
    stale. View counts are buffered in memory and written every few seconds, in small batches.
    """

    def __init__(self, core: HelpdeskCore, max_pages: int = MAX_PAGES) -> None:
        self.core = core
        self.markdown = MarkdownCache()
        # An article's data is read again only for a variant of its page not yet kept (another
        # host, header or feedback state): an eighth as many as kept pages serve those, and
        # every entry is objects each full garbage collection walks.
        self._pages: LRU[tuple[int, Generation, str, str], ArticlePage] = LRU(
            max(1, max_pages // 8)
        )
        self._rendered: LRU[tuple[int, Generation, Hashable], RenderedPage] = LRU(max_pages)
        self._categories: LRU[tuple[int, Generation, int], Category] = LRU(max_pages)
        self._generations: dict[int, int] = {}
        self._epoch = 0  # advanced by `invalidate_all`
        self._views: dict[int, Counter[int]] = {}

    def generation(self, tenant_id: int) -> Generation:
        """The tenant's cache generation now: take it before reading what will be cached."""
        return self._epoch, self._generations.get(tenant_id, 0)

    async def article_page(self, tenant_id: int, language: str, slug: str) -> ArticlePage:
        """The published article with its breadcrumb and translations; NotFound otherwise."""
        key = (tenant_id, self.generation(tenant_id), language, slug)
        page = self._pages.get(key)
        if page is not None:
            return page
        # Every published language of the slug, this one too if it is published: one read for
        # the article and its translations (on asyncpg a round trip costs this process ~0.5 ms).
        versions = await self.core.kb.translations(tenant_id, slug)
        article = next((a for a in versions if a.language == language), None)
        if article is None:
            raise NotFound("no such article")
        breadcrumb = tuple(await self.breadcrumb(tenant_id, article.category_id))
        await yield_to_loop()  # the reads (inline on SQLite) were one part, the Markdown is another
        body = self.markdown.render(article)
        page = ArticlePage(
            article=article,
            html=body,
            description=html_summary(body, 160),
            breadcrumb=breadcrumb,
            translations=tuple(a for a in versions if a.id != article.id),
        )
        self._pages.put(key, page)
        return page

    def rendered(self, tenant: Tenant, variant: Hashable) -> RenderedPage | None:
        """The page kept for `variant` (everything its HTML depends on besides the tenant and
        the knowledge base), while both are as it showed them."""
        key = (tenant.id, self.generation(tenant.id), variant)
        page = self._rendered.get(key)
        if page is not None and page.expires < time.monotonic():
            return None
        if page is None or page.tenant is tenant:
            return page
        if page.tenant != tenant:
            return None
        # The same tenant read again (the resolver's cache time passed): compare once only.
        page = replace(page, tenant=tenant)
        self._rendered.put(key, page)
        return page

    def keep(self, variant: Hashable, generation: Generation, page: RenderedPage) -> None:
        """Keep a rendered page, under the generation taken before its data was read."""
        self._rendered.put((page.tenant.id, generation, variant), page)

    async def breadcrumb(self, tenant_id: int, category_id: int | None) -> list[Category]:
        """Categories from the top-most parent down to `category_id`."""
        trail: list[Category] = []
        seen: set[int] = set()
        while category_id is not None and category_id not in seen:
            seen.add(category_id)
            # A help center has few categories and many articles in each: read each once.
            key = (tenant_id, self.generation(tenant_id), category_id)
            category = self._categories.get(key)
            if category is None:
                try:
                    category = await self.core.kb.get_category(tenant_id, category_id)
                except NotFound:
                    break
                self._categories.put(key, category)
            trail.append(category)
            category_id = category.parent_id
        return list(reversed(trail))

    def invalidate(self, tenant_id: int) -> None:
        """Forget the tenant's pages: its articles or categories changed."""
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1

    def invalidate_all(self) -> None:
        """Forget every page: changes may have gone unheard."""
        self._epoch += 1
        self._pages.clear()
        self._rendered.clear()
        self._categories.clear()

    def count_view(self, tenant_id: int, article_id: int) -> None:
        views = self._views.get(tenant_id)
        if views is None:
            views = self._views[tenant_id] = Counter()
        views[article_id] += 1

    async def flush_views(self) -> None:
        """Write buffered view counts to the core, VIEW_BATCH articles per write, letting the
        event loop run between writes; counts survive a failed write."""
        pending, self._views = self._views, {}
        batches: list[tuple[int, dict[int, int]]] = []
        for tenant_id, counts in pending.items():
            items = list(counts.items())
            for start in range(0, len(items), VIEW_BATCH):
                batches.append((tenant_id, dict(items[start : start + VIEW_BATCH])))
        for done, (tenant_id, batch) in enumerate(batches):
            if done:
                await asyncio.sleep(0)  # requests waiting since the last write go first
            try:
                await self.core.kb.add_article_views(tenant_id, batch)
            except Exception:
                log.exception("could not store article views; keeping them for the next flush")
                for later_tenant, later in batches[done:]:
                    self._views.setdefault(later_tenant, Counter()).update(later)
                return

    async def flush_views_forever(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush_views()
