"""Web forms: the page (direct link and iframe), the widget's JSON API, suggestions, deflections.

Pages
    `GET /forms/{id}` draws the form; `?embed=1` draws it in a minimal layout for iframes, with
    `frame-ancestors *` so any site may frame that variant (and only that one), and `?lang=` picks
    the language (else Accept-Language, else the tenant's). `POST /forms/{id}` checks it: the page
    variant needs the CSRF token bound to the `portal_form` cookie, the iframe variant
    (`?embed=1`) the signed form token instead, since third-party cookies are blocked in iframes.
    Invalid input is answered 400 with per-field errors and the typed values kept (files are not);
    an expired token or CSRF failure 403 with the form again; success 303 to a thank-you page that
    shows the ticket reference (Post/Redirect/Get).

API (CORS `*`, no cookies)
    `GET /api/forms/{id}` the definition with a fresh `form_token` and `visit_key`;
    `POST /api/forms/{id}/submissions` JSON or multipart with `form_token` and `idempotency_key`
    (or an `Idempotency-Key` header): 201 with the ticket, 422 with per-field `errors`, 403 for a
    missing, forged, expired or other form's token; `GET /api/forms/{id}/suggestions?q=` up to five
    articles for the subject typed so far; `POST /api/forms/{id}/deflections` (`form_token`,
    `article_id`, `query`) records that a suggestion was opened during the token's visit: 204
    (429 with Retry-After past DEFLECTIONS_PER_ADDRESS or DEFLECTIONS_PER_TENANT).

Both submission paths: a honeypot (filled: pretend success, create nothing), per-IP and
per-tenant rate limits (429 with Retry-After), and an idempotency key (one ticket per key, the
same reference on every retry). After the ticket is created the visit is marked as ticketed, so
the deflection summary counts only suggestions that were opened without a ticket following.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from portal.attachments import ALLOWED_TYPES, AttachmentRejected, Limits
from portal.core.contract import Conflict, Department, Form, NotFound, Tenant
from portal.forms.abuse import HONEYPOT, honeypot_filled, submission_wait
from portal.forms.cache import form_cache
from portal.forms.definition import definition, standard_labels
from portal.forms.submit import BodyError, create_ticket, first, read_form, read_json
from portal.forms.tokens import (
    VISIT_COOKIE,
    VISIT_COOKIE_MAX_AGE,
    make_form_token,
    make_thanks_token,
    new_key,
    page_csrf_ok,
    page_csrf_token,
    read_form_token,
    read_thanks_token,
    valid_key,
    visit_nonce,
)
from portal.forms.validation import (
    ATTACHMENTS,
    DEPARTMENT,
    Outcome,
    human_size,
    priority_labels,
    validate,
)
from portal.i18n import LANGUAGES, normalize_language
from portal.jsonsafe import JSONError
from portal.jsonsafe import loads as json_loads
from portal.ratelimit import (
    DEFLECTIONS_PER_ADDRESS,
    DEFLECTIONS_PER_TENANT,
    client_ip,
    limits_of,
    too_many,
    wait_message,
)
from portal.security import CSP
from portal.templating import gettext, page_language, render, use_language

MAX_DB_ID = 2**31 - 1
EMBED_CSP = CSP.replace("frame-ancestors 'self'", "frame-ancestors *")
CORS = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language, Idempotency-Key",
    "Access-Control-Max-Age": "86400",
}
SUGGESTION_LIMIT = 5
MAX_QUERY = 200


# ------------------------------------------------------------------ helpers
def _tenant(request: Request) -> Tenant:
    return request.state.tenant


def _language(request: Request) -> str:
    """`?lang=` when it names a supported language, else Accept-Language, else the tenant's."""
    raw = request.query_params.get("lang", "")
    return (normalize_language(raw) if raw else None) or page_language(request)


def _embed(request: Request) -> bool:
    return request.query_params.get("embed") == "1"


def _query(*, embed: bool, lang: str | None = None, **extra: str) -> str:
    params = {"embed": "1"} if embed else {}
    if lang:
        params["lang"] = lang
    params.update(extra)
    return f"?{urlencode(params)}" if params else ""


async def _get_form(request: Request) -> Form | None:
    form_id = request.path_params["form_id"]
    if form_id > MAX_DB_ID:
        return None
    return await form_cache(request).form(request.state.core, _tenant(request).id, form_id)


async def _departments(request: Request, form: Form) -> list[Department]:
    if form.department_id is not None:
        return []
    return await form_cache(request).departments(request.state.core, _tenant(request).id)


def _same_origin(request: Request) -> bool:
    """False when the browser says the POST comes from another site (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


def _page_headers(embed: bool) -> dict[str, str]:
    headers = {"Cache-Control": "no-store"}
    if embed:
        headers["Content-Security-Policy"] = EMBED_CSP
    return headers


def _absolute(request: Request, path: str) -> str:
    scheme = request.state.settings.public_scheme
    return f"{scheme}://{request.headers.get('host', request.url.netloc)}{path}"


def _busy_message() -> str:
    return gettext("Your request could not be saved just now. Please send it again.")


def _body_message(status: int) -> str:
    if status == 413:
        return gettext("The files are too large to send together. Send fewer or smaller files.")
    return gettext("The form could not be read. Reload the page and try again.")


# ------------------------------------------------------------------ the page
async def _form_page(
    request: Request,
    form: Form,
    *,
    lang: str,
    embed: bool,
    nonce: str | None,
    outcome: Outcome | None = None,
    form_token: str | None = None,
    idempotency_key: str | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    tenant = _tenant(request)
    signer = request.state.signer
    departments = await _departments(request, form)
    values: dict[str, Any] = dict(outcome.values) if outcome else {}
    if not outcome:
        values[DEPARTMENT] = request.query_params.get("department", "")
    raw_department = str(values.get(DEPARTMENT) or "")
    department_id = form.department_id
    if department_id is None and raw_department.isdigit():
        department_id = next((d.id for d in departments if str(d.id) == raw_department), None)
    if not form_token:
        form_token = make_form_token(signer, tenant.id, form.id, new_key())
    limits = Limits.for_tenant(tenant)
    path = request.url_for("forms_page", form_id=form.id).path
    context = {
        "form": form,
        "embed": embed,
        "departments": departments,
        "department_id": department_id,
        "values": values,
        "errors": outcome.errors if outcome else {},
        "problem": problem,
        "labels": standard_labels() | {f.key: f.label for f in form.fields},
        "priorities": priority_labels(),
        "csrf_token": page_csrf_token(signer, nonce) if nonce and not embed else "",
        "form_token": form_token,
        "idempotency_key": idempotency_key or new_key(),
        "honeypot": HONEYPOT,
        "action": path + _query(embed=embed, lang=request.query_params.get("lang") and lang),
        "api_base": request.url_for("forms_api_form", form_id=form.id).path,
        "accept": ",".join(sorted(ALLOWED_TYPES)),
        "limits": limits,
        "max_size": human_size(limits.max_bytes),
        "alternates": {code: path + _query(embed=embed, lang=code) for code in LANGUAGES},
    }
    return render(
        request,
        "forms/form.html",
        context,
        status_code=status_code,
        language=lang,
        headers=_page_headers(embed),
    )


def _set_visit_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        VISIT_COOKIE,
        nonce,
        max_age=VISIT_COOKIE_MAX_AGE,
        path="/forms",
        secure=bool(request.state.settings.production),
        httponly=True,
        samesite="lax",
    )


def _limited_page(request: Request, lang: str, embed: bool, wait: float) -> Response:
    seconds = max(1, math.ceil(wait))
    headers = _page_headers(embed) | {"Retry-After": str(seconds)}
    return render(
        request,
        "forms/limited.html",
        {"message": wait_message(seconds), "embed": embed},
        status_code=429,
        language=lang,
        headers=headers,
    )


def _message_page(request: Request, lang: str, embed: bool, status: int, message: str) -> Response:
    return render(
        request,
        "forms/message.html",
        {"message": message, "embed": embed, "status": status},
        status_code=status,
        language=lang,
        headers=_page_headers(embed),
    )


def _to_thanks(
    request: Request, form: Form, number: int | None, lang: str, embed: bool
) -> Response:
    tenant = _tenant(request)
    token = make_thanks_token(request.state.signer, tenant.id, form.id, number)
    path = request.url_for("forms_thanks", form_id=form.id).path
    explicit_lang = lang if request.query_params.get("lang") else None
    return RedirectResponse(path + _query(embed=embed, lang=explicit_lang, r=token), 303)


async def form_page(request: Request) -> Response:
    lang = _language(request)
    embed = _embed(request)
    with use_language(lang):
        form = await _get_form(request)
        if form is None:
            raise HTTPException(404, gettext("There is no such form."))
        nonce, new_nonce = (
            (None, False) if embed else visit_nonce(request.cookies.get(VISIT_COOKIE))
        )
        response = await _form_page(request, form, lang=lang, embed=embed, nonce=nonce)
        if nonce and new_nonce:
            _set_visit_cookie(response, request, nonce)
        return response


async def form_submit(request: Request) -> Response:
    lang = _language(request)
    embed = _embed(request)
    with use_language(lang):
        form = await _get_form(request)
        if form is None:
            raise HTTPException(404, gettext("There is no such form."))
        tenant = _tenant(request)
        wait = submission_wait(request)
        if wait:
            return _limited_page(request, lang, embed, wait)
        limits = Limits.for_tenant(tenant)
        try:
            data, uploads = await read_form(request, form, limits)
        except BodyError as exc:
            return _message_page(request, lang, embed, exc.status, _body_message(exc.status))
        signer = request.state.signer
        departments = await _departments(request, form)
        form_token = first(data, "form_token")
        visit_key = read_form_token(signer, form_token, tenant.id, form.id)
        idempotency_key = first(data, "idempotency_key")
        if not valid_key(idempotency_key):
            idempotency_key = new_key()

        nonce: str | None = None
        if not embed:
            nonce, new_nonce = visit_nonce(request.cookies.get(VISIT_COOKIE))
            csrf_passed = not new_nonce and _same_origin(request)
            csrf_passed = csrf_passed and page_csrf_ok(signer, nonce, first(data, "csrf_token"))
        else:
            new_nonce, csrf_passed = False, True
        if visit_key is None and not embed and csrf_passed:
            visit_key = new_key()  # the page form's own check passed; start a visit
            form_token = make_form_token(signer, tenant.id, form.id, visit_key)
        if not csrf_passed or visit_key is None:
            # Too old, or not sent from our page: show the form again with fresh tokens and what
            # was typed, and change nothing.
            shown = validate(form, departments, data, [], limits)
            response = await _form_page(
                request,
                form,
                lang=lang,
                embed=embed,
                nonce=nonce,
                outcome=Outcome(None, {}, shown.values),
                idempotency_key=idempotency_key,
                problem=gettext(
                    "This form was open too long or did not come from this page, so it was not "
                    "sent. Check your entries and send it again."
                ),
                status_code=403,
            )
            if nonce and new_nonce:
                _set_visit_cookie(response, request, nonce)
            return response

        if honeypot_filled(data):
            return _to_thanks(request, form, None, lang, embed)

        outcome = validate(form, departments, data, uploads, limits)
        if outcome.submission is not None:
            try:
                ticket = await create_ticket(
                    request.state.core,
                    request.state.attachments,
                    tenant,
                    form,
                    outcome.submission,
                    idempotency_key=idempotency_key,
                    visit_key=visit_key,
                    source="web",
                )
            except AttachmentRejected as exc:
                outcome = Outcome(None, {ATTACHMENTS: str(exc)}, outcome.values)
            except Conflict:
                outcome = Outcome(None, {}, outcome.values)
                return await _form_page(
                    request,
                    form,
                    lang=lang,
                    embed=embed,
                    nonce=nonce,
                    outcome=outcome,
                    form_token=form_token,
                    idempotency_key=idempotency_key,
                    problem=_busy_message(),
                    status_code=503,
                )
            except NotFound:  # the department went away meanwhile
                outcome = Outcome(
                    None, {DEPARTMENT: gettext("Choose one of the listed options.")}, outcome.values
                )
            else:
                return _to_thanks(request, form, ticket.number, lang, embed)
        return await _form_page(
            request,
            form,
            lang=lang,
            embed=embed,
            nonce=nonce,
            outcome=outcome,
            form_token=form_token,
            idempotency_key=idempotency_key,
            status_code=400,
        )


async def form_thanks(request: Request) -> Response:
    lang = _language(request)
    embed = _embed(request)
    with use_language(lang):
        form = await _get_form(request)
        if form is None:
            raise HTTPException(404, gettext("There is no such form."))
        ok, number = read_thanks_token(
            request.state.signer, request.query_params.get("r"), _tenant(request).id, form.id
        )
        if not ok:
            raise HTTPException(404, gettext("There is no such form."))
        path = request.url_for("forms_page", form_id=form.id).path
        explicit_lang = lang if request.query_params.get("lang") else None
        return render(
            request,
            "forms/thanks.html",
            {
                "form": form,
                "embed": embed,
                "reference": f"#{number}" if number is not None else "",
                "again_url": path + _query(embed=embed, lang=explicit_lang),
            },
            language=lang,
            headers=_page_headers(embed),
        )


# ------------------------------------------------------------------ the JSON API
def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status_code, headers=CORS | (headers or {}))


def _preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


def _no_form() -> Response:
    return _json({"error": gettext("There is no such form.")}, 404)


def _bad_token() -> Response:
    message = gettext("The form has expired. Load it again, then send it.")
    return _json({"error": message, "errors": {"form_token": message}}, 403)


async def api_form(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    lang = _language(request)
    with use_language(lang):
        form = await _get_form(request)
        if form is None:
            return _no_form()
        tenant = _tenant(request)
        departments = await _departments(request, form)
        visit_key = new_key()
        body = definition(form, departments, Limits.for_tenant(tenant), lang)
        url = request.url_for
        body |= {
            "form_token": make_form_token(request.state.signer, tenant.id, form.id, visit_key),
            "visit_key": visit_key,
            "idempotency_key": new_key(),
            "submit_url": url("forms_api_submit", form_id=form.id).path,
            "suggestions_url": url("forms_api_suggestions", form_id=form.id).path,
            "deflections_url": url("forms_api_deflections", form_id=form.id).path,
            "page_url": _absolute(request, url("forms_page", form_id=form.id).path),
        }
        return _json(body)


async def api_submit(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    lang = _language(request)
    with use_language(lang):
        form = await _get_form(request)
        if form is None:
            return _no_form()
        tenant = _tenant(request)
        wait = submission_wait(request)
        if wait:
            seconds = max(1, math.ceil(wait))
            return _json(
                {"error": wait_message(seconds), "retry_after": seconds},
                429,
                {"Retry-After": str(seconds)},
            )
        limits = Limits.for_tenant(tenant)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == "application/json":
                data, uploads = await read_json(request), []
            elif content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
                data, uploads = await read_form(request, form, limits)
            else:
                return _json({"error": "Send application/json or multipart/form-data."}, 415)
        except BodyError as exc:
            return _json({"error": _body_message(exc.status)}, exc.status)
        visit_key = read_form_token(
            request.state.signer, first(data, "form_token"), tenant.id, form.id
        )
        if visit_key is None:
            return _bad_token()
        if honeypot_filled(data):
            return _json({"ok": True, "ticket": None}, 201)
        idempotency_key = first(data, "idempotency_key") or request.headers.get(
            "idempotency-key", ""
        )
        errors: dict[str, str] = {}
        if not valid_key(idempotency_key):
            errors["idempotency_key"] = gettext(
                "Send an idempotency key of 8 to 100 letters, digits, hyphens or underscores."
            )
        outcome = validate(form, await _departments(request, form), data, uploads, limits)
        errors |= outcome.errors
        if not errors and outcome.submission is not None:
            try:
                ticket = await create_ticket(
                    request.state.core,
                    request.state.attachments,
                    tenant,
                    form,
                    outcome.submission,
                    idempotency_key=idempotency_key,
                    visit_key=visit_key,
                    source="api",
                )
            except AttachmentRejected as exc:
                errors = {ATTACHMENTS: str(exc)}
            except Conflict:
                return _json({"error": _busy_message()}, 503, {"Retry-After": "1"})
            except NotFound:
                errors = {DEPARTMENT: gettext("Choose one of the listed options.")}
            else:
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
            {"error": gettext("Please correct the fields marked below."), "errors": errors}, 422
        )


def _hit_json(request: Request, hit: Any) -> dict[str, Any]:
    path = request.url_for("kb_article", lang=hit.language, slug=hit.slug).path
    return {
        "article_id": hit.article_id,
        "title": hit.title,
        "url": _absolute(request, path),
        "snippet": hit.snippet_html,
        "language": hit.language,
    }


async def api_suggestions(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    query = " ".join(request.query_params.get("q", "").split())[:MAX_QUERY]
    raw_lang = request.query_params.get("lang", "")
    lang = normalize_language(raw_lang) if raw_lang else None
    with use_language(lang or page_language(request)):
        form = await _get_form(request)
        if form is None:
            return _no_form()
    hits = []
    if query:
        search = request.state.search
        tenant_id = _tenant(request).id
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


async def api_deflections(request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    with use_language(_language(request)):
        tenant = _tenant(request)
        form_id = request.path_params["form_id"]
        payload = await _payload(request)
        if payload is None:
            return _json({"error": "Send a JSON object."}, 400)
        visit_key = read_form_token(
            request.state.signer, payload.get("form_token"), tenant.id, form_id
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
        refused = limits_of(request).check(tenant, *checks)
        if refused:
            return too_many(request, refused, language=_language(request), headers=CORS)
        query = payload.get("query")
        query = " ".join(query.split())[:MAX_QUERY] if isinstance(query, str) else ""
        try:
            await request.state.core.record_deflection(tenant.id, visit_key, article_id, query)
        except NotFound:
            return _json({"error": gettext("There is no such article.")}, 404)
        return Response(status_code=204, headers=CORS)


routes = [
    Route("/forms/{form_id:int}", form_page, methods=["GET"], name="forms_page"),
    Route("/forms/{form_id:int}", form_submit, methods=["POST"], name="forms_submit"),
    Route("/forms/{form_id:int}/thanks", form_thanks, methods=["GET"], name="forms_thanks"),
    Route("/api/forms/{form_id:int}", api_form, methods=["GET", "OPTIONS"], name="forms_api_form"),
    Route(
        "/api/forms/{form_id:int}/submissions",
        api_submit,
        methods=["POST", "OPTIONS"],
        name="forms_api_submit",
    ),
    Route(
        "/api/forms/{form_id:int}/suggestions",
        api_suggestions,
        methods=["GET", "OPTIONS"],
        name="forms_api_suggestions",
    ),
    Route(
        "/api/forms/{form_id:int}/deflections",
        api_deflections,
        methods=["POST", "OPTIONS"],
        name="forms_api_deflections",
    ),
]
