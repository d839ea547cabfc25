"""Knowledge base pages, the type-ahead search API, feedback and the sitemap.

Anonymous writes are rate limited (`portal.ratelimit`): searches with no results are recorded at
most MISSED_SEARCHES_PER_ADDRESS an hour (the search still answers), one "was this helpful?"
vote per address and article counts a day, and more than FEEDBACK_PER_ADDRESS votes get a 429.
"""

from __future__ import annotations

import functools
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape, quoteattr

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from portal.core.contract import Article, Category, Feedback, NotFound, Tenant
from portal.i18n import LANGUAGES, normalize_language
from portal.kb.search import SearchHit
from portal.ratelimit import (
    FEEDBACK_PER_ADDRESS,
    FEEDBACK_PER_TENANT,
    MISSED_SEARCHES_PER_ADDRESS,
    MISSED_SEARCHES_PER_TENANT,
    VOTES_PER_ARTICLE,
    client_ip,
    limits_of,
    too_many,
)
from portal.templating import page_language, render
from portal.urls import absolute, path_for

SEARCH_PAGE_LIMIT = 20
TYPEAHEAD_LIMIT = 5
MAX_QUERY_LENGTH = 200


def _tenant(request: Request) -> Tenant:
    return request.state.tenant


def localized(handler: Callable[[Request, str], Awaitable[Response]]) -> Callable:
    """Endpoint wrapper: a 404 for unknown languages, a redirect for aliases (`no`, `zh-CN`)."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        lang = request.path_params["lang"]
        if lang in LANGUAGES:
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
    tenant = _tenant(request)
    core = request.state.core
    categories = await core.list_categories(tenant.id, lang)
    articles = await core.list_articles(tenant.id, language=lang)
    counts: dict[int | None, int] = defaultdict(int)
    for article in articles:
        counts[article.category_id] += 1
    return render(
        request,
        "kb/home.html",
        {
            "tree": _tree(categories, articles),
            "counts": counts,
            "popular": await core.most_viewed(tenant.id, lang, limit=6),
            "canonical": absolute(request, request.url.path),
            "alternates": {
                code: absolute(request, path_for(request, "kb_home", lang=code))
                for code in LANGUAGES
            },
        },
        language=lang,
    )


async def kb_category(request: Request, lang: str) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    try:
        category = await core.get_category_by_slug(tenant.id, lang, request.path_params["slug"])
    except NotFound as exc:
        raise HTTPException(404, "There is no such category in this help center.") from exc
    children = [
        c for c in await core.list_categories(tenant.id, lang) if c.parent_id == category.id
    ]
    return render(
        request,
        "kb/category.html",
        {
            "category": category,
            "children": children,
            "articles": await core.list_articles(tenant.id, language=lang, category_id=category.id),
            "breadcrumb": await request.state.kb.breadcrumb(tenant.id, category.parent_id),
            "canonical": absolute(request, request.url.path),
        },
        language=lang,
    )


async def kb_article(request: Request, lang: str) -> Response:
    tenant = _tenant(request)
    kb = request.state.kb
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


async def kb_feedback(request: Request, lang: str) -> Response:
    """Store one "was this helpful?" vote; the form's key makes a double submit count once."""
    tenant = _tenant(request)
    slug = request.path_params["slug"]
    form = await request.form()
    helpful = form.get("helpful")
    key = str(form.get("key") or "")
    if helpful not in ("yes", "no") or not (8 <= len(key) <= 100):
        return JSONResponse(
            {"error": "Send helpful=yes or helpful=no with the form's key."}, status_code=400
        )
    wants_json = "application/json" in request.headers.get("accept", "")
    limits, ip = limits_of(request), client_ip(request)
    refused = limits.check(tenant, (FEEDBACK_PER_ADDRESS, ip), (FEEDBACK_PER_TENANT, ""))
    if refused:
        return too_many(request, refused, page=not wants_json, language=lang)
    try:
        article = (await request.state.kb.article_page(tenant.id, lang, slug)).article
    except NotFound as exc:
        raise HTTPException(404, "There is no such article in this help center.") from exc
    # One vote per address and article counts; a repeat is thanked as usual, not counted.
    if limits.check(tenant, (VOTES_PER_ARTICLE, f"{ip}:{article.id}")) is None:
        comment = str(form.get("comment") or "")[:2000]
        await request.state.core.record_feedback(
            tenant.id, Feedback(article.id, helpful == "yes", comment), idempotency_key=key
        )
    if wants_json:
        return JSONResponse({"ok": True})
    url = path_for(request, "kb_article", lang=lang, slug=slug) + "?feedback=thanks#feedback"
    return RedirectResponse(url, status_code=303)


def _search(request: Request, query: str, lang: str | None, limit: int) -> list[SearchHit]:
    return request.state.search.search(_tenant(request).id, query, language=lang, limit=limit)


async def _record_missed_search(request: Request, query: str, lang: str) -> None:
    """Record a search that found nothing, unless this address (or everyone) recorded plenty:
    strangers' text must not flood the admin's list."""
    tenant = _tenant(request)
    checks = (MISSED_SEARCHES_PER_ADDRESS, client_ip(request)), (MISSED_SEARCHES_PER_TENANT, "")
    if limits_of(request).check(tenant, *checks) is None:
        await request.state.core.record_missed_search(tenant.id, query, lang)


async def kb_search(request: Request, lang: str) -> Response:
    query = request.query_params.get("q", "").strip()[:MAX_QUERY_LENGTH]
    hits: list[SearchHit] = []
    other_languages = False
    if query:
        hits = _search(request, query, lang, SEARCH_PAGE_LIMIT)
        if not hits:
            hits = _search(request, query, None, SEARCH_PAGE_LIMIT)
            other_languages = bool(hits)
        if not hits:
            await _record_missed_search(request, query, lang)
    return render(
        request,
        "kb/search.html",
        {"query": query, "hits": hits, "other_languages": other_languages},
        language=lang,
        headers={"X-Robots-Tag": "noindex"},
    )


async def kb_search_json(request: Request) -> Response:
    """Type-ahead for the widget: `results` best first, snippets are escaped HTML with <mark>.

    Partial queries typed letter by letter are not recorded as missed searches; the widget
    sends `record=1` with the query the visitor finally submits.
    """
    query = request.query_params.get("q", "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        return JSONResponse(
            {"error": f"q is longer than {MAX_QUERY_LENGTH} characters."}, status_code=400
        )
    raw_lang = request.query_params.get("lang", "")
    lang = normalize_language(raw_lang) if raw_lang else None
    if raw_lang and lang is None:
        supported = ", ".join(LANGUAGES)
        return JSONResponse(
            {"error": f"lang {raw_lang!r} is not supported; use one of {supported}."},
            status_code=400,
        )
    try:
        limit = min(max(int(request.query_params.get("limit", TYPEAHEAD_LIMIT)), 1), 20)
    except ValueError:
        return JSONResponse({"error": "limit must be a number from 1 to 20."}, status_code=400)
    hits = _search(request, query, lang, limit) if query else []
    if query and not hits and request.query_params.get("record") == "1":
        await _record_missed_search(request, query, lang or "")
    results = [
        {
            "title": hit.title,
            "url": absolute(
                request, path_for(request, "kb_article", lang=hit.language, slug=hit.slug)
            ),
            "snippet": hit.snippet_html,
            "language": hit.language,
        }
        for hit in hits
    ]
    return JSONResponse(
        {"query": query, "results": results},
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"},
    )


async def sitemap(request: Request) -> Response:
    """Every published article, with hreflang alternates for its translations."""
    tenant = _tenant(request)
    articles = await request.state.core.list_articles(tenant.id)
    by_slug: dict[str, list[Article]] = defaultdict(list)
    for article in articles:
        by_slug[article.slug].append(article)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:xhtml="http://www.w3.org/1999/xhtml">',
    ]
    for article in articles:
        url = absolute(request, article_path(request, article))
        lines.append(f"<url><loc>{escape(url)}</loc>")
        lines.append(f"<lastmod>{article.updated_at.date().isoformat()}</lastmod>")
        siblings = by_slug[article.slug]
        if len(siblings) > 1:
            for other in siblings:
                href = absolute(request, article_path(request, other))
                lines.append(
                    f'<xhtml:link rel="alternate" hreflang={quoteattr(other.language)} '
                    f"href={quoteattr(href)}/>"
                )
        lines.append("</url>")
    lines.append("</urlset>")
    return Response("\n".join(lines), media_type="application/xml")


async def robots(request: Request) -> Response:
    sitemap_url = absolute(request, path_for(request, "sitemap"))
    return Response(f"User-agent: *\nAllow: /\nSitemap: {sitemap_url}\n", media_type="text/plain")


routes = [
    Route("/", site_root, name="home"),
    Route("/kb/", kb_root, name="kb_root"),
    Route("/kb/search.json", kb_search_json, name="kb_search_json"),
    Route("/kb/{lang}/", localized(kb_home), name="kb_home"),
    Route("/kb/{lang}/search", localized(kb_search), name="kb_search"),
    Route("/kb/{lang}/categories/{slug}", localized(kb_category), name="kb_category"),
    Route("/kb/{lang}/articles/{slug}", localized(kb_article), name="kb_article"),
    Route(
        "/kb/{lang}/articles/{slug}/feedback",
        localized(kb_feedback),
        name="kb_feedback",
        methods=["POST"],
    ),
    Route("/sitemap.xml", sitemap, name="sitemap"),
    Route("/robots.txt", robots, name="robots"),
]
