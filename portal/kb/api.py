"""The type-ahead search API the widget and the search box call: `/kb/search.json`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.asgi_headers import header
from portal.i18n import LANGUAGES, normalize_language
from portal.kb.pages import kept_page
from portal.kb.store import JSON, RenderedPage
from portal.kb.visitor_search import MAX_QUERY_LENGTH, record_missed_search, search_hits
from portal.request_helpers import tenant_of
from portal.services import services
from portal.urls import absolute, path_for

TYPEAHEAD_LIMIT = 5


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
    tenant = tenant_of(request)

    async def make() -> RenderedPage:
        hits = search_hits(request, query, lang, limit) if query else []
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
        body = bytes(JSONResponse({"query": query, "results": results}).body)
        return RenderedPage.of(tenant, (body,), found=bool(hits) or not query)

    # Kept per state of the index, like the search page; its links name the request's host.
    generation = services(request).search.generation(tenant.id)
    host = header(request.scope, b"host")
    kept = await kept_page(request, ("search.json", host, query, lang, limit, generation), make)
    if not kept.found and request.query_params.get("record") == "1":
        await record_missed_search(request, query, lang or "")
    return kept.answer(request.scope, content_type=JSON, headers=_HEADERS)


_HEADERS = ((b"access-control-allow-origin", b"*"), (b"cache-control", b"no-store"))
