"""The knowledge base's route table; the handlers are in pages, api, feedback and sitemap."""

from __future__ import annotations

from starlette.routing import Route

from portal.kb.api import kb_search_json
from portal.kb.feedback import kb_feedback
from portal.kb.pages import (
    kb_article,
    kb_category,
    kb_home,
    kb_root,
    kb_search,
    language_from_path,
    site_root,
)
from portal.kb.sitemap import robots, sitemap

routes = [
    Route("/", site_root, name="home"),
    Route("/kb/", kb_root, name="kb_root"),
    Route("/kb/search.json", kb_search_json, name="kb_search_json"),
    Route("/kb/{lang}/", language_from_path(kb_home), name="kb_home"),
    Route("/kb/{lang}/search", language_from_path(kb_search), name="kb_search"),
    Route("/kb/{lang}/categories/{slug}", language_from_path(kb_category), name="kb_category"),
    Route("/kb/{lang}/articles/{slug}", language_from_path(kb_article), name="kb_article"),
    Route(
        "/kb/{lang}/articles/{slug}/feedback",
        language_from_path(kb_feedback),
        name="kb_feedback",
        methods=["POST"],
    ),
    Route("/sitemap.xml", sitemap, name="sitemap"),
    Route("/robots.txt", robots, name="robots"),
]
