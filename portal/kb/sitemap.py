"""`/sitemap.xml` (every published article, with hreflang alternates) and `/robots.txt`."""

from __future__ import annotations

from collections import defaultdict
from xml.sax.saxutils import escape, quoteattr

from starlette.requests import Request
from starlette.responses import Response

from portal.core.contract import Article
from portal.kb.pages import article_path
from portal.request_helpers import tenant_of
from portal.services import services
from portal.urls import absolute, path_for


async def sitemap(request: Request) -> Response:
    """Every published article, with hreflang alternates for its translations."""
    tenant = tenant_of(request)
    articles = await services(request).core.kb.list_articles(tenant.id)
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
