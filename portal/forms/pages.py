"""The form page: a direct link or an iframe, with a thank-you page after it.

`GET /forms/{id}` draws the form; `?embed=1` draws it in a minimal layout for iframes (framed by
the tenant's own sites, as every app is: `portal.embedding`), and `?lang=` picks
the language (else Accept-Language, else the tenant's). `POST /forms/{id}` checks it: the page
variant needs the CSRF token bound to the `portal_form` cookie, the iframe variant
(`?embed=1`) the signed form token instead, since third-party cookies are blocked in iframes.
Invalid input is answered 400 with per-field errors and the typed values kept (files are not);
an expired token or CSRF failure 403 with the form again; success 303 to a thank-you page that
shows the ticket reference (Post/Redirect/Get).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.attachments import ALLOWED_TYPES, human_size, upload_limits
from portal.core.contract import Form
from portal.edge.outbox.domains import pending_reference
from portal.forms.abuse import HONEYPOT, submission_wait
from portal.forms.body import BodyError, body_message, first, read_form
from portal.forms.definition import standard_labels
from portal.forms.lookup import form_departments, requested_form
from portal.forms.submission import busy_message, submit
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
from portal.forms.validation import DEPARTMENT, Outcome, validate
from portal.i18n import LANGUAGES, current_language, gettext, language_from_query
from portal.labels import priority_labels
from portal.ratelimit import wait_message
from portal.request_helpers import same_origin, tenant_of
from portal.services import services
from portal.templating import render
from portal.urls import path_for


def _embed(request: Request) -> bool:
    return request.query_params.get("embed") == "1"


def _query(*, embed: bool, lang: str | None = None, **extra: str) -> str:
    params = {"embed": "1"} if embed else {}
    if lang:
        params["lang"] = lang
    params.update(extra)
    return f"?{urlencode(params)}" if params else ""


NO_STORE = {"Cache-Control": "no-store"}


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
    tenant = tenant_of(request)
    signer = services(request).signer
    departments = await form_departments(request, form)
    values: dict[str, Any] = dict(outcome.values) if outcome else {}
    if not outcome:
        values[DEPARTMENT] = request.query_params.get("department", "")
    raw_department = str(values.get(DEPARTMENT) or "")
    department_id = form.department_id
    if department_id is None and raw_department.isdigit():
        department_id = next((d.id for d in departments if str(d.id) == raw_department), None)
    if not form_token:
        form_token = make_form_token(signer, tenant.id, form.id, new_key())
    limits = upload_limits(tenant, services(request).core.capabilities)
    path = path_for(request, "forms_page", form_id=form.id)
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
        "api_base": path_for(request, "forms_api_form", form_id=form.id),
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
        headers=NO_STORE,
    )


def _set_visit_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        VISIT_COOKIE,
        nonce,
        max_age=VISIT_COOKIE_MAX_AGE,
        path="/forms",
        secure=bool(services(request).settings.production),
        httponly=True,
        samesite="lax",
    )


def _limited_page(request: Request, lang: str, embed: bool, wait: float) -> Response:
    seconds = max(1, math.ceil(wait))
    headers = NO_STORE | {"Retry-After": str(seconds)}
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
        headers=NO_STORE,
    )


def _to_thanks(
    request: Request, form: Form, number: int | str | None, lang: str, embed: bool
) -> Response:
    tenant = tenant_of(request)
    token = make_thanks_token(services(request).signer, tenant.id, form.id, number)
    path = path_for(request, "forms_thanks", form_id=form.id)
    explicit_lang = lang if request.query_params.get("lang") else None
    return RedirectResponse(path + _query(embed=embed, lang=explicit_lang, r=token), 303)


@language_from_query
async def form_page(request: Request) -> Response:
    lang = current_language()
    embed = _embed(request)
    form = await requested_form(request)
    if form is None:
        raise HTTPException(404, gettext("There is no such form."))
    nonce, new_nonce = (None, False) if embed else visit_nonce(request.cookies.get(VISIT_COOKIE))
    response = await _form_page(request, form, lang=lang, embed=embed, nonce=nonce)
    if nonce and new_nonce:
        _set_visit_cookie(response, request, nonce)
    return response


@language_from_query
async def form_submit(request: Request) -> Response:
    lang = current_language()
    embed = _embed(request)
    form = await requested_form(request)
    if form is None:
        raise HTTPException(404, gettext("There is no such form."))
    tenant = tenant_of(request)
    wait = submission_wait(request)
    if wait:
        return _limited_page(request, lang, embed, wait)
    limits = upload_limits(tenant, services(request).core.capabilities)
    try:
        data, uploads = await read_form(request, form, limits)
    except BodyError as exc:
        return _message_page(request, lang, embed, exc.status, body_message(exc.status))
    signer = services(request).signer
    departments = await form_departments(request, form)
    form_token = first(data, "form_token")
    visit_key = read_form_token(signer, form_token, tenant.id, form.id)
    idempotency_key = first(data, "idempotency_key")
    if not valid_key(idempotency_key):
        idempotency_key = new_key()

    nonce: str | None = None
    if not embed:
        nonce, new_nonce = visit_nonce(request.cookies.get(VISIT_COOKIE))
        csrf_passed = not new_nonce and same_origin(request)
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

    result = await submit(
        request,
        form,
        data,
        uploads,
        limits=limits,
        idempotency_key=idempotency_key,
        visit_key=visit_key,
        source="web",
        departments=departments,
    )
    if result.ignored or result.ticket is not None:
        number: int | str | None = None
        if result.ticket is not None:  # a ticket still in the outbox has a local reference
            number = pending_reference(result.ticket) or result.ticket.number
        return _to_thanks(request, form, number, lang, embed)
    return await _form_page(
        request,
        form,
        lang=lang,
        embed=embed,
        nonce=nonce,
        outcome=result.outcome,
        form_token=form_token,
        idempotency_key=idempotency_key,
        problem=busy_message() if result.busy else "",
        status_code=503 if result.busy else 400,
    )


@language_from_query
async def form_thanks(request: Request) -> Response:
    lang = current_language()
    embed = _embed(request)
    form = await requested_form(request)
    if form is None:
        raise HTTPException(404, gettext("There is no such form."))
    ok, number = read_thanks_token(
        services(request).signer, request.query_params.get("r"), tenant_of(request).id, form.id
    )
    if not ok:
        raise HTTPException(404, gettext("There is no such form."))
    path = path_for(request, "forms_page", form_id=form.id)
    explicit_lang = lang if request.query_params.get("lang") else None
    return render(
        request,
        "forms/thanks.html",
        {
            "form": form,
            "embed": embed,
            "reference": number if isinstance(number, str) else f"#{number}" if number else "",
            "pending": isinstance(number, str),
            "again_url": path + _query(embed=embed, lang=explicit_lang),
        },
        language=lang,
        headers=NO_STORE,
    )
