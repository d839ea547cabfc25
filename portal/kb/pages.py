"""The help center's pages: home, categories, articles and search results, per language."""

from __future__ import annotations

import functools
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.core.contract import Article, Category, NotFound
from portal.i18n import LANGUAGES, normalize_language, page_language, use_language
from portal.kb.index import SearchHit
from portal.kb.visitor_search import MAX_QUERY_LENGTH, record_missed_search, search_hits
from portal.request_helpers import tenant_of
from portal.services import services
from portal.templating import render
from portal.urls import absolute, path_for

SEARCH_PAGE_LIMIT = 20


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
        return RedirectResponse(path, status_code=301)

    return endpoint


def article_path(request: Request, article: Article) -> str:
    return path_for(request, "kb_article", lang=article.language, slug=article.slug)


async def kb_root(request: Request) -> Response:
    """`/kb/` picks the visitor's language and sends them to that help center home."""
    lang = page_language(request)
    response = RedirectResponse(path_for(request, "kb_home", lang=lang), status_code=302)
    response.headers["Vary"] = "Accept-Language"
    return response


async def site_root(request: Request) -> Response:
    return RedirectResponse(path_for(request, "kb_root"), status_code=302)


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


async def kb_home(request: Request, lang: str) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    categories = await core.kb.list_categories(tenant.id, lang)
    articles = await core.kb.list_articles(tenant.id, language=lang)
    counts: dict[int | None, int] = defaultdict(int)
    for article in articles:
        counts[article.category_id] += 1
    return render(
        request,
        "kb/home.html",
        {
            "tree": _tree(categories, articles),
            "counts": counts,
            "popular": await core.kb.most_viewed(tenant.id, lang, limit=6),
            "canonical": absolute(request, request.url.path),
            "alternates": {
                code: absolute(request, path_for(request, "kb_home", lang=code))
                for code in LANGUAGES
            },
        },
        language=lang,
    )


async def kb_category(request: Request, lang: str) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    try:
        category = await core.kb.get_category_by_slug(tenant.id, lang, request.path_params["slug"])
    except NotFound as exc:
        raise HTTPException(404, "There is no such category in this help center.") from exc
    children = [
        c for c in await core.kb.list_categories(tenant.id, lang) if c.parent_id == category.id
    ]
    return render(
        request,
        "kb/category.html",
        {
            "category": category,
            "children": children,
            "articles": await core.kb.list_articles(
                tenant.id, language=lang, category_id=category.id
            ),
            "breadcrumb": await services(request).kb.breadcrumb(tenant.id, category.parent_id),
            "canonical": absolute(request, request.url.path),
        },
        language=lang,
    )


async def kb_article(request: Request, lang: str) -> Response:
    tenant = tenant_of(request)
    kb = services(request).kb
    try:
        page = await kb.article_page(tenant.id, lang, request.path_params["slug"])
    except NotFound as exc:
        raise HTTPException(404, "There is no such article in this help center.") from exc
    kb.count_view(tenant.id, page.article.id)
    return render(
        request,
        "kb/article.html",
        {
            "page": page,
            "article": page.article,
            "description": page.description,
            "canonical": absolute(request, request.url.path),
            "feedback_key": secrets.token_urlsafe(16),
            "feedback_sent": request.query_params.get("feedback") == "thanks",
            # the footer's language links go to this article's translations where there are some
            "alternates": {
                t.language: absolute(request, article_path(request, t)) for t in page.translations
            },
        },
        language=lang,
    )


async def kb_search(request: Request, lang: str) -> Response:
    query = request.query_params.get("q", "").strip()[:MAX_QUERY_LENGTH]
    hits: list[SearchHit] = []
    other_languages = False
    if query:
        hits = search_hits(request, query, lang, SEARCH_PAGE_LIMIT)
        if not hits:
            hits = search_hits(request, query, None, SEARCH_PAGE_LIMIT)
            other_languages = bool(hits)
        if not hits:
            await record_missed_search(request, query, lang)
    return render(
        request,
        "kb/search.html",
        {"query": query, "hits": hits, "other_languages": other_languages},
        language=lang,
        headers={"X-Robots-Tag": "noindex"},
    )
