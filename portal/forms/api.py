"""The forms' JSON API for the widget and other sites (CORS `*`, no cookies).

`GET /api/forms/{id}` the definition with a fresh `form_token` and `visit_key`;
`POST /api/forms/{id}/submissions` JSON or multipart with `form_token` and `idempotency_key`
(or an `Idempotency-Key` header): 201 with the ticket (202 with `"pending": true` and a local
`R-...` reference when a remote core did not answer in time: the edge's outbox sends it later),
422 with per-field `errors`, 403 for a
missing, forged, expired or other form's token; `GET /api/forms/{id}/suggestions?q=` up to five
articles for the subject typed so far; `POST /api/forms/{id}/deflections` (`form_token`,
`article_id`, `query`) records that a suggestion was opened during the token's visit: 204
(429 with Retry-After past DEFLECTIONS_PER_ADDRESS or DEFLECTIONS_PER_TENANT).
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.attachments import Upload, upload_limits
from portal.core.contract import NotFound
from portal.edge.outbox.domains import pending_reference
from portal.forms.abuse import submission_wait
from portal.forms.body import BodyError, body_message, first, read_form, read_json
from portal.forms.definition import definition
from portal.forms.lookup import form_departments, requested_form
from portal.forms.submission import busy_message, submit
from portal.forms.tokens import make_form_token, new_key, read_form_token, valid_key
from portal.i18n import current_language, gettext, language_from_query, normalize_language
from portal.jsonsafe import JSONError
from portal.jsonsafe import loads as json_loads
from portal.ratelimit import (
    DEFLECTIONS_PER_ADDRESS,
    DEFLECTIONS_PER_TENANT,
    client_ip,
    too_many,
    wait_message,
)
from portal.request_helpers import MAX_DB_ID, tenant_of
from portal.services import services
from portal.urls import absolute, path_for

CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, Idempotency-Key",
    "Access-Control-Max-Age": "86400",
}
SUGGESTION_LIMIT = 5
MAX_QUERY = 200


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status_code, headers=CORS | (headers or {}))


def _preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


def _no_form() -> Response:
    return _json({"error": gettext("There is no such form.")}, 404)


def _bad_token() -> Response:
    message = gettext("The form has expired. Load it again, then send it.")
    return _json({"error": message, "errors": {"form_token": message}}, 403)


@language_from_query
async def api_form(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    lang = current_language()
    form = await requested_form(request)
    if form is None:
        return _no_form()
    tenant = tenant_of(request)
    departments = await form_departments(request, form)
    visit_key = new_key()
    limits = upload_limits(tenant, services(request).core.capabilities)
    body = definition(form, departments, limits, lang)
    url = request.url_for
    body |= {
        "form_token": make_form_token(services(request).signer, tenant.id, form.id, visit_key),
        "visit_key": visit_key,
        "idempotency_key": new_key(),
        "submit_url": url("forms_api_submit", form_id=form.id).path,
        "suggestions_url": url("forms_api_suggestions", form_id=form.id).path,
        "deflections_url": url("forms_api_deflections", form_id=form.id).path,
        "page_url": absolute(request, url("forms_page", form_id=form.id).path),
    }
    return _json(body)


@language_from_query
async def api_submit(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    form = await requested_form(request)
    if form is None:
        return _no_form()
    tenant = tenant_of(request)
    wait = submission_wait(request)
    if wait:
        seconds = max(1, math.ceil(wait))
        return _json(
            {"error": wait_message(seconds), "retry_after": seconds},
            429,
            {"Retry-After": str(seconds)},
        )
    limits = upload_limits(tenant, services(request).core.capabilities)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    uploads: list[Upload] = []
    try:
        if content_type == "application/json":
            data = await read_json(request)
        elif content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            data, uploads = await read_form(request, form, limits)
        else:
            return _json({"error": "Send application/json or multipart/form-data."}, 415)
    except BodyError as exc:
        return _json({"error": body_message(exc.status)}, exc.status)
    visit_key = read_form_token(
        services(request).signer, first(data, "form_token"), tenant.id, form.id
    )
    if visit_key is None:
        return _bad_token()
    idempotency_key = first(data, "idempotency_key") or request.headers.get("idempotency-key", "")
    errors: dict[str, str] = {}
    if not valid_key(idempotency_key):
        errors["idempotency_key"] = gettext(
            "Send an idempotency key of 8 to 100 letters, digits, hyphens or underscores."
        )
    result = await submit(
        request,
        form,
        data,
        uploads,
        limits=limits,
        idempotency_key=idempotency_key,
        visit_key=visit_key,
        source="api",
        errors=errors,
    )
    if result.ignored:
        return _json({"ok": True, "ticket": None}, 201)
    if result.busy:
        return _json({"error": busy_message()}, 503, {"Retry-After": "1"})
    if result.ticket is not None and pending_reference(result.ticket):
        # Stored on the edge, not confirmed by the core yet: 202, with the local reference.
        return _json(
            {
                "ok": True,
                "pending": True,
                "message": gettext("We received your request and will confirm it shortly."),
                "ticket": {
                    "number": None,
                    "reference": pending_reference(result.ticket),
                    "kind": result.ticket.kind,
                },
            },
            202,
        )
    if result.ticket is not None:
        ticket = result.ticket
        return _json(
            {
                "ok": True,
                "ticket": {
                    "number": ticket.number,
                    "reference": f"#{ticket.number}",
                    "kind": ticket.kind,
                },
            },
            201,
        )
    return _json(
        {
            "error": gettext("Please correct the fields marked below."),
            "errors": result.outcome.errors,
        },
        422,
    )


def _hit_json(request: Request, hit: Any) -> dict[str, Any]:
    path = path_for(request, "kb_article", lang=hit.language, slug=hit.slug)
    return {
        "article_id": hit.article_id,
        "title": hit.title,
        "url": absolute(request, path),
        "snippet": hit.snippet_html,
        "language": hit.language,
    }


@language_from_query
async def api_suggestions(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    query = " ".join(request.query_params.get("q", "").split())[:MAX_QUERY]
    raw_lang = request.query_params.get("lang", "")
    lang = normalize_language(raw_lang) if raw_lang else None
    form = await requested_form(request)
    if form is None:
        return _no_form()
    hits = []
    if query:
        search = services(request).search
        tenant_id = tenant_of(request).id
        hits = search.search(tenant_id, query, language=lang, limit=SUGGESTION_LIMIT)
        if not hits and lang:
            hits = search.search(tenant_id, query, language=None, limit=SUGGESTION_LIMIT)
    return _json({"query": query, "results": [_hit_json(request, hit) for hit in hits]})


async def _payload(request: Request) -> dict[str, Any] | None:
    """A small JSON object (whatever the content type: sendBeacon sends text/plain) or a form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form(max_files=0, max_fields=20)
        return {key: value for key, value in form.items() if isinstance(value, str)}
    body = await request.body()
    if len(body) > 10_000:
        return None
    try:
        payload = json_loads(body or b"{}")
    except JSONError:
        return None
    return payload if isinstance(payload, dict) else None


@language_from_query
async def api_deflections(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    tenant = tenant_of(request)
    form_id = request.path_params["form_id"]
    payload = await _payload(request)
    if payload is None:
        return _json({"error": "Send a JSON object."}, 400)
    visit_key = read_form_token(
        services(request).signer, payload.get("form_token"), tenant.id, form_id
    )
    claimed = payload.get("visit_key")
    if visit_key is None or (claimed not in (None, "") and claimed != visit_key):
        return _bad_token()
    raw_id = payload.get("article_id")
    article_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if isinstance(raw_id, str) and raw_id.isdigit() and len(raw_id) < 12:
        article_id = int(raw_id)
    if article_id is None or not 0 < article_id <= MAX_DB_ID:
        return _json({"error": "article_id must be an article's id."}, 422)
    checks = (DEFLECTIONS_PER_ADDRESS, client_ip(request)), (DEFLECTIONS_PER_TENANT, "")
    refused = services(request).rate_limits.check(tenant, *checks)
    if refused:
        return too_many(request, refused, headers=CORS)
    query = payload.get("query")
    query = " ".join(query.split())[:MAX_QUERY] if isinstance(query, str) else ""
    try:
        await services(request).core.forms.record_deflection(
            tenant.id, visit_key, article_id, query
        )
    except NotFound:
        return _json({"error": gettext("There is no such article.")}, 404)
    return Response(status_code=204, headers=CORS)
