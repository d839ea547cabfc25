"""Sign-in by magic link (or its code), the confirm step, sign-out and the sign-in rate limits.

The answer to a sign-in request is the same page, with the same status, for every address: the
lookup of the customer and the mail happen in a background task after the response is sent, so
neither the content nor the timing of the answer says whether the address is known. Unknown
addresses get no mail.

Opening a link only shows a confirm button: mail scanners that fetch every link in a mail would
otherwise spend it before the person clicks. The POST of that button spends the token id, marks
the customer's address as verified and starts a server-side session (`portal.sessions.customer`).
Signing out ends that session; "sign out everywhere" ends every session of the customer.

Rate limits (per app instance and process): 30 sign-in requests per IP address and 5 per email
address (per tenant) in 15 minutes, then a 429 page that says when to try again; 5 code attempts
per sign-in request.
"""

from __future__ import annotations

import math

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.core.contract import HelpdeskCore, NotFound, Tenant
from portal.customer import links
from portal.customer.pages import csrf_failed, page, require_customer
from portal.emails import clean_email
from portal.embedding import delete_cookie, embedded, set_cookie
from portal.i18n import current_language, ngettext, use_language
from portal.i18n import gettext as _
from portal.mail import Mailer
from portal.ratelimit import RateLimiter, client_ip
from portal.redirects import CUSTOMER_HOME, safe_customer_next
from portal.request_helpers import customer_of, same_origin, session_id_of, tenant_of
from portal.services import services
from portal.sessions import store
from portal.sessions.customer import current_session, sign_in, sign_out
from portal.urls import path_for, request_tenant_url

PENDING_COOKIE = "portal_signin"
PENDING_PATH = "/portal/sign-in"
WINDOW = 15 * 60
IP_LIMIT = 30
EMAIL_LIMIT = 5
CODE_ATTEMPTS = 5


class SignInLimits:
    """The sign-in limiters of one app (in its services): per address, per email, per code."""

    def __init__(self) -> None:
        self.ip = RateLimiter(IP_LIMIT, WINDOW)
        self.email = RateLimiter(EMAIL_LIMIT, WINDOW)
        self.code = RateLimiter(CODE_ATTEMPTS, WINDOW)


def too_many(request: Request, retry_after: float) -> Response:
    minutes = max(1, math.ceil(retry_after / 60))
    return page(
        request,
        "customer/rate_limited.html",
        {"minutes": minutes},
        status_code=429,
        headers={"Retry-After": str(math.ceil(retry_after))},
    )


def _sign_in_form(
    request: Request,
    *,
    email: str = "",
    error: str = "",
    next_path: str = "",
    status_code: int = 200,
    embed: bool | None = None,
    signed_out: bool = False,
) -> Response:
    context = {
        "email": email,
        "error": error,
        "next": next_path,
        "signed_out": signed_out,
        "embed": embedded(request) if embed is None else embed,
    }
    return page(request, "customer/sign_in.html", context, status_code=status_code)


async def sign_in_page(request: Request) -> Response:
    if request.method == "POST":
        return await _request_link(request)
    next_path = request.query_params.get("next", "")
    if await current_session(request) is not None:
        return RedirectResponse(safe_customer_next(next_path), status_code=303)
    return _sign_in_form(
        request, next_path=next_path, signed_out=request.query_params.get("signed_out") == "1"
    )


async def _request_link(request: Request) -> Response:
    if not same_origin(request):
        return csrf_failed(request)
    form = await request.form()
    email = str(form.get("email", "")).strip()
    next_path = str(form.get("next", ""))
    embed = embedded(request, form)
    if clean_email(email) is None:  # the same check as forms and chat
        return _sign_in_form(
            request,
            email=email,
            error=_("Enter an email address like name@example.com."),
            next_path=next_path,
            status_code=400,
            embed=embed,
        )
    tenant = tenant_of(request)
    lim = services(request).sign_in_limits
    wait = lim.ip.hit(client_ip(request)) or lim.email.hit(f"{tenant.id}:{email.lower()}")
    if wait:
        return too_many(request, wait)

    signer, settings = services(request).signer, services(request).settings
    minutes = links.sign_in_minutes(tenant)
    safe = safe_customer_next(next_path) if next_path else ""
    token, token_id = links.make_magic_link(signer, tenant, email, minutes=minutes, next_path=safe)
    link = links.MagicLink(tenant.id, email.lower(), token_id, minutes, safe)
    response = page(
        request,
        "customer/check_mail.html",
        {"email": email, "minutes": minutes, "embed": embed},
    )
    set_cookie(
        response,
        request,
        PENDING_COOKIE,
        links.pending_token(settings.secret_key, link),
        max_age=minutes * 60,
        path=PENDING_PATH,
        embed=embed,
    )
    response.background = BackgroundTask(
        send_sign_in_mail,
        services(request).core,
        services(request).mailer,
        tenant,
        email,
        # The host the customer is on, if it is one of the tenant's own (its subdomain or a
        # verified domain), where the link's cookies are: never a host the client made up.
        request_tenant_url(request, tenant, path_for(request, "customer_magic_link", token=token)),
        links.sign_in_code(settings.secret_key, token_id),
        minutes,
        current_language(),  # the mail is written after the answer, in the page's language
    )
    return response


async def send_sign_in_mail(
    core: HelpdeskCore,
    mailer: Mailer,
    tenant: Tenant,
    email: str,
    url: str,
    code: str,
    minutes: int,
    language: str,
) -> None:
    """Mail the link, only when the address belongs to a customer of this tenant."""
    try:
        await core.customers.find_customer(tenant.id, email)
    except NotFound:
        return
    with use_language(language):
        subject = _("Your sign-in link for %(name)s") % {"name": tenant.name}
        body = "\n\n".join(
            [
                _("Hello,"),
                _("Use this link to sign in to %(name)s and follow your requests:")
                % {"name": tenant.name}
                + "\n"
                + url,
                _("Or enter this code on the sign-in page: %(code)s") % {"code": code},
                ngettext(
                    "The link and the code work once and expire in %(num)d minute.",
                    "The link and the code work once and expire in %(num)d minutes.",
                    minutes,
                )
                % {"num": minutes},
                _("If you did not ask to sign in, you can ignore this email."),
            ]
        )
    await mailer.send(email, subject, body + "\n", sender_name=tenant.name)


def _link_problem(request: Request, status_code: int = 400) -> Response:
    return page(
        request,
        "customer/message.html",
        {
            "title": _("This sign-in link cannot be used"),
            "message": _(
                "It has expired or was used already. Links work once and only for a short "
                "time. Ask for a new one below."
            ),
            "sign_in_again": True,
        },
        status_code=status_code,
        headers={"Referrer-Policy": "same-origin"},
    )


async def magic_link(request: Request) -> Response:
    tenant = tenant_of(request)
    token = request.path_params["token"]
    link = links.read_magic_link(services(request).signer, token, tenant.id)
    if link is None:
        return _link_problem(request)
    if request.method == "GET":
        session = await current_session(request)
        if session is not None and session[0].email == link.email:
            return RedirectResponse(safe_customer_next(link.next), status_code=303)
        return page(
            request,
            "customer/confirm.html",
            {"email": link.email, "token": token},
            headers={"Referrer-Policy": "same-origin"},
        )
    if not same_origin(request):
        return csrf_failed(request)
    form = await request.form()
    if not await services(request).core.customers.spend_token(link.token_id, link.expires_at):
        return _link_problem(request)
    return await _finish_sign_in(request, link, embedded(request, form))


async def _finish_sign_in(request: Request, link: links.MagicLink, embed: bool) -> Response:
    try:
        customer = await services(request).core.customers.find_customer(
            tenant_of(request).id, link.email
        )
    except NotFound:
        return _link_problem(request)
    # Following the link (or typing its code) proves the customer reads mail at this address.
    await services(request).core.customers.verify_customer_email(customer.tenant_id, customer.id)
    response = RedirectResponse(safe_customer_next(link.next or CUSTOMER_HOME), status_code=303)
    await sign_in(response, request, customer, embed=embed)
    delete_cookie(response, request, PENDING_COOKIE, PENDING_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response


async def sign_in_code(request: Request) -> Response:
    """The code from the mail, typed in the browser that asked for it."""
    if not same_origin(request):
        return csrf_failed(request)
    form = await request.form()
    embed = embedded(request, form)
    settings = services(request).settings
    tenant = tenant_of(request)
    pending = request.cookies.get(PENDING_COOKIE, "")
    link = links.read_pending(settings.secret_key, pending, tenant.id) if pending else None
    if link is None:
        return _link_problem(request)
    wait = services(request).sign_in_limits.code.hit(link.token_id)
    if wait:
        return too_many(request, wait)
    typed = str(form.get("code", ""))[:40]
    if not links.code_matches(settings.secret_key, link.token_id, typed):
        return page(
            request,
            "customer/check_mail.html",
            {
                "email": link.email,
                "minutes": link.minutes,
                "embed": embed,
                "code_error": _("That code is not right. Check the email and try again."),
            },
            status_code=400,
        )
    if not await services(request).core.customers.spend_token(link.token_id, link.expires_at):
        return _link_problem(request)
    return await _finish_sign_in(request, link, embed)


async def _signed_out(request: Request) -> Response:
    form = await request.form()
    query = "?signed_out=1" + ("&embed=1" if embedded(request, form) else "")
    response = RedirectResponse(path_for(request, "customer_sign_in") + query, status_code=303)
    sign_out(response, request)
    return response


@require_customer
async def sign_out_endpoint(request: Request) -> Response:
    await store.end(request, session_id_of(request))
    return await _signed_out(request)


@require_customer
async def sign_out_everywhere(request: Request) -> Response:
    """End every session of this customer, this one included (copied cookies die too)."""
    await store.end_all(request, store.CUSTOMER, customer_of(request).id)
    return await _signed_out(request)
