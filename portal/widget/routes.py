"""The widget's routes: the loader with its config inlined, the config alone, and the panel.

- `GET /widget.js` the loader (static/widget/loader.js) with the tenant's run-time config
  inlined: one request before the visitor's first click. `Cache-Control: no-cache` with an ETag,
  so a browser asks again on every page load (answered 304 while nothing changed) and an admin's
  change shows on the next one.
- `GET /widget/config.json` the same config alone, for sites that drive the widget themselves.
- `GET /widget/panel` the page the loader opens in its iframe on the first click: the tenant's
  apps (search, chat, contact form, my tickets). It may be framed by the tenant's allowed sites.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.core.contract import NotFound, Tenant
from portal.embedding import secure_headers
from portal.i18n import current_language, language_from_query, normalize_language
from portal.request_helpers import tenant_of
from portal.resources import STATIC_DIR
from portal.services import services
from portal.templating import render
from portal.widget.config import FORMS_TTL_S, widget_config

PLACEHOLDER = "/*CONFIG*/null"


@cache
def _loader_source() -> str:
    source = (STATIC_DIR / "widget" / "loader.js").read_text()
    if PLACEHOLDER not in source:
        raise RuntimeError(f"static/widget/loader.js lacks {PLACEHOLDER}")
    return source


def _inline_json(data: object) -> str:
    # Compact, and "<" escaped so the text can never close a script element it is put in.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")


def _revalidated(request: Request, body: bytes, media_type: str) -> Response:
    """`body` with an ETag, or 304 when the browser already has it."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache",
        "Vary": "Accept-Language",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


class LoaderCache:
    """Built loaders, kept a few seconds: every page view of a customer's site asks for one.

    An entry holds the tenant object it was built from: the resolver hands out a new one after
    any change to the tenant, so an admin's change is never served stale."""

    def __init__(self, ttl: float = FORMS_TTL_S) -> None:
        self.ttl = ttl
        self._built: dict[tuple[int, str, str], tuple[float, Tenant, bytes]] = {}

    async def get(self, request: Request) -> bytes:
        """The loader for this request's tenant, language and host."""
        tenant = tenant_of(request)
        key = (tenant.id, current_language(), request.headers.get("host", ""))
        now = time.monotonic()
        found = self._built.get(key)
        if found is not None and found[0] > now and found[1] is tenant:
            return found[2]
        config = await widget_config(request)
        body = _loader_source().replace(PLACEHOLDER, _inline_json(config)).encode()
        if len(self._built) > 10_000:
            self._built.clear()  # hostile Host headers must not grow it without bound
        self._built[key] = (now + self.ttl, tenant, body)
        return body


# The loader, its config and the panel speak `?lang=` when the host page asks for a language.
@language_from_query
async def loader(request: Request) -> Response:
    body = await services(request).widget_loaders.get(request)
    return _revalidated(request, body, "text/javascript; charset=utf-8")


@language_from_query
async def config_json(request: Request) -> Response:
    config = await widget_config(request)
    response = _revalidated(request, _inline_json(config).encode(), "application/json")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@language_from_query
async def panel(request: Request) -> Response:
    config = await widget_config(request)
    language = config["lang"]
    context = {
        "config": config,
        "greeting": config["strings"]["greeting"],
    }
    response = render(request, "widget/panel.html", context, language=language)
    return secure_headers(response)  # framed by the tenant's own sites only (TenantCSP)


async def article(request: Request) -> Response:
    """An article for the panel's frame: in the language asked for, else the tenant's."""
    tenant = tenant_of(request)
    slug, lang = request.path_params["slug"], normalize_language(request.path_params["lang"])
    page = None
    for language in dict.fromkeys(x for x in (lang, tenant.default_locale) if x):
        try:
            page = await services(request).kb.article_page(tenant.id, language, slug)
            break
        except NotFound:
            continue
    if page is None:
        raise HTTPException(404, "There is no such article in this help center.")
    response = render(
        request,
        "widget/article.html",
        {"page": page, "article": page.article},
        language=page.article.language,
    )
    return secure_headers(response)


routes: list[BaseRoute] = [
    Route("/widget.js", loader, name="widget_loader"),
    Route("/widget/config.json", config_json, name="widget_config"),
    Route("/widget/panel", panel, name="widget_panel"),
    Route("/widget/article/{lang}/{slug}", article, name="widget_article"),
]
