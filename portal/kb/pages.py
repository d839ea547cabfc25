"""The help center's pages: home, categories, articles and search results, per language."""

from __future__ import annotations

import base64
import functools
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from typing import cast

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.app_switches import app_on
from portal.asgi_headers import header
from portal.capabilities import has
from portal.core.contract import Article, Category, NotFound
from portal.i18n import LANGUAGES, normalize_language, page_language, use_language
from portal.kb.index import SearchHit
from portal.kb.store import RenderedPage, yield_to_loop
from portal.kb.visitor_search import MAX_QUERY_LENGTH, record_missed_search, search_hits
from portal.navigation import site_nav
from portal.request_helpers import tenant_of
from portal.services import services
from portal.templating import render_html
from portal.urls import absolute, path_for

SEARCH_PAGE_LIMIT = 20
# Search pages are answers, not content: kept out of search engines' indexes.
_NOINDEX = ((b"x-robots-tag", b"noindex"),)
# The home's "popular articles" follow the view counts, which no event announces.
POPULAR_TTL_S = 60.0
# Where an article page kept for many answers has each answer's own feedback key: a key shared
# by two visitors would count the second one's vote as the first one's repeat.
_FEEDBACK_KEY_SLOT = f"feedback-key-{secrets.token_hex(16)}"


class _FeedbackKeys:
    """Each article answer's feedback key: 18 random bytes from the OS (as `secrets` reads
    them), 24 URL-safe characters, made 256 at a time: one system call and one encoding per 256
    answers, not per answer."""

    BATCH = 256

    def __init__(self) -> None:
        self._keys: list[str] = []
        # A forked child must not hand out its parent's keys.
        os.register_at_fork(after_in_child=self._keys.clear)

    def __call__(self) -> str:
        if not self._keys:
            encoded = base64.urlsafe_b64encode(os.urandom(18 * self.BATCH)).decode()
            self._keys = [encoded[i : i + 24] for i in range(0, len(encoded), 24)]
        return self._keys.pop()


feedback_key = _FeedbackKeys()


def language_from_path(
    handler: Callable[[Request, str], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Endpoint wrapper for `/kb/{lang}/...`: the handler answers in that language, and gets it.

    An unknown language is a 404, an alias (`no`, `zh-CN`) a redirect to the canonical path.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang in LANGUAGES:
            # The URL names the help center's language: it wins over the browser's (the
            # middleware's choice), for the page and every message made on the way.
            with use_language(lang):
                return await handler(request, lang)
        canonical = normalize_language(lang)
        if canonical is None:
            raise HTTPException(404, "This help center has no pages in that language.")
        path = request.url.path.replace(f"/kb/{lang}/", f"/kb/{canonical}/", 1)
        query = request.url.query  # the iframe variant and a search stay what they were
        return RedirectResponse(path + (f"?{query}" if query else ""), status_code=301)

    return endpoint


def article_path(request: Request, article: Article) -> str:
    return path_for(request, "kb_article", lang=article.language, slug=article.slug)


async def kb_root(request: Request) -> Response:
    """`/kb/` picks the visitor's language and sends them to that help center home."""
    lang = page_language(request)
    home = path_for(request, "kb_home", lang=lang) + ("?embed=1" if in_frame(request) else "")
    response = RedirectResponse(home, status_code=302)
    response.headers["Vary"] = "Accept-Language"
    return response


async def site_root(request: Request) -> Response:
    """The host's bare address: the help center, else the first app the tenant has on."""
    tenant = tenant_of(request)
    for app, route in (("kb", "kb_root"), ("tickets", "customer_home"), ("chat", "messenger")):
        if app_on(tenant, app) and (app != "chat" or has(request, "chat")):
            return RedirectResponse(path_for(request, route), status_code=302)
    raise HTTPException(404, "This help center has no public pages.")


def _tree(
    categories: list[Category], articles: list[Article]
) -> list[tuple[Category, list[Category], list[Article]]]:
    """Top-level categories with their child categories and their own articles."""
    by_category: dict[int | None, list[Article]] = defaultdict(list)
    for article in articles:
        by_category[article.category_id].append(article)
    ids = {c.id for c in categories}
    tops = [c for c in categories if c.parent_id is None or c.parent_id not in ids]
    return [
        (top, [c for c in categories if c.parent_id == top.id], by_category.get(top.id, []))
        for top in tops
    ]


async def kept_page(
    request: Request, variant: Hashable, make: Callable[[], Awaitable[RenderedPage]]
) -> RenderedPage:
    """The page kept for `variant` (all its HTML depends on besides the tenant and the knowledge
    base), else `make()`, kept under the generation from before it read anything."""
    tenant = tenant_of(request)
    kb = services(request).kb
    kept = kb.rendered(tenant, variant)
    if kept is None:
        generation = kb.generation(tenant.id)
        kept = await make()
        kb.keep(variant, generation, kept)
    return kept


def in_frame(request: Request) -> bool:
    """The iframe variant (`?embed=1`): a page without the site's header and footer, whose
    links stay in the variant. Only the URL says so: a kept page must not depend on headers."""
    return request.query_params.get("embed") == "1"


def _host(request: Request) -> bytes | None:
    """The host the page's absolute links name (`absolute`): part of every variant with them."""
    return header(request.scope, b"host")


async def kb_home(request: Request, lang: str) -> Response:
    """The help center's home, kept; its popular articles are at most POPULAR_TTL_S old."""
    tenant = tenant_of(request)
    nav = site_nav(request, lang)
    embed = in_frame(request)

    async def make() -> RenderedPage:
        core = services(request).core
        # Three reads of the whole language's articles: one at a time, between other requests.
        categories = await core.kb.list_categories(tenant.id, lang)
        await yield_to_loop()
        articles = await core.kb.list_articles(tenant.id, language=lang)
        await yield_to_loop()
        popular = await core.kb.most_viewed(tenant.id, lang, limit=6)
        await yield_to_loop()
        counts: dict[int | None, int] = defaultdict(int)
        for article in articles:
            counts[article.category_id] += 1
        context = {
            "tree": _tree(categories, articles),
            "counts": counts,
            "popular": popular,
            "canonical": absolute(request, request.url.path),
            "alternates": {
                code: absolute(request, path_for(request, "kb_home", lang=code))
                for code in LANGUAGES
            },
            "site_nav": nav,
            "embed": embed,
        }
        html = render_html(request, "kb/home.html", context, language=lang)
        expires = time.monotonic() + POPULAR_TTL_S
        return RenderedPage.of(tenant, (html.encode(),), expires=expires)

    kept = await kept_page(request, ("home", lang, _host(request), nav, embed), make)
    return kept.answer(request.scope)


async def kb_category(request: Request, lang: str) -> Response:
    """A category with its subcategories and articles, kept."""
    tenant = tenant_of(request)
    slug = request.path_params["slug"]
    nav = site_nav(request, lang)
    embed = in_frame(request)

    async def make() -> RenderedPage:
        core = services(request).core
        try:
            category = await core.kb.get_category_by_slug(tenant.id, lang, slug)
        except NotFound as exc:
            raise HTTPException(404, "There is no such category in this help center.") from exc
        categories = await core.kb.list_categories(tenant.id, lang)
        articles = await core.kb.list_articles(tenant.id, language=lang, category_id=category.id)
        breadcrumb = await services(request).kb.breadcrumb(tenant.id, category.parent_id)
        await yield_to_loop()
        context = {
            "category": category,
            "children": [c for c in categories if c.parent_id == category.id],
            "articles": articles,
            "breadcrumb": breadcrumb,
            "canonical": absolute(request, request.url.path),
            "site_nav": nav,
            "embed": embed,
        }
        html = render_html(request, "kb/category.html", context, language=lang)
        return RenderedPage.of(tenant, (html.encode(),))

    kept = await kept_page(request, ("category", lang, slug, _host(request), nav, embed), make)
    return kept.answer(request.scope)


async def kb_article(request: Request, lang: str) -> Response:
    """An article, kept per variant; each answer gets only its own feedback key."""
    tenant = tenant_of(request)
    kb = services(request).kb
    slug = request.path_params["slug"]
    # Most views carry no query: parsing none costs more than the rest of a kept page's lookup.
    query = bool(request.scope["query_string"])
    feedback_sent = query and request.query_params.get("feedback") == "thanks"
    embed = query and in_frame(request)
    nav = site_nav(request, lang)

    async def make() -> RenderedPage:
        try:
            page = await kb.article_page(tenant.id, lang, slug)
        except NotFound as exc:
            raise HTTPException(404, "There is no such article in this help center.") from exc
        await yield_to_loop()  # the template is the last part of a first view
        context = {
            "page": page,
            "article": page.article,
            "description": page.description,
            "canonical": absolute(request, request.url.path),
            "feedback_key": _FEEDBACK_KEY_SLOT,
            "feedback_sent": feedback_sent,
            # the footer's language links: to this article's translations, where it has any
            "alternates": {
                t.language: absolute(request, article_path(request, t)) for t in page.translations
            },
            "site_nav": nav,
            "embed": embed,
        }
        html = render_html(request, "kb/article.html", context, language=lang)
        parts = tuple(part.encode() for part in html.split(_FEEDBACK_KEY_SLOT))
        return RenderedPage.of(tenant, parts, article_id=page.article.id)

    variant = ("article", lang, slug, _host(request), feedback_sent, nav, embed)
    kept = await kept_page(request, variant, make)
    kb.count_view(tenant.id, cast(int, kept.article_id))
    return kept.answer(request.scope, feedback_key())


async def kb_search(request: Request, lang: str) -> Response:
    """Search results, kept per query and state of the index."""
    query = request.query_params.get("q", "").strip()[:MAX_QUERY_LENGTH]
    tenant = tenant_of(request)
    nav = site_nav(request, lang)
    embed = in_frame(request)

    async def make() -> RenderedPage:
        hits: list[SearchHit] = []
        other_languages = False
        if query:
            hits = search_hits(request, query, lang, SEARCH_PAGE_LIMIT)
            if not hits:
                await yield_to_loop()  # each search is one part of a first view
                hits = search_hits(request, query, None, SEARCH_PAGE_LIMIT)
                other_languages = bool(hits)
            await yield_to_loop()  # and the page another
        context = {"query": query, "hits": hits, "other_languages": other_languages}
        context |= {"site_nav": nav, "embed": embed}
        html = render_html(request, "kb/search.html", context, language=lang)
        return RenderedPage.of(tenant, (html.encode(),), found=bool(hits) or not query)

    generation = services(request).search.generation(tenant.id)
    kept = await kept_page(request, ("search", lang, query, generation, nav, embed), make)
    if not kept.found:
        await record_missed_search(request, query, lang)
    return kept.answer(request.scope, headers=_NOINDEX)
