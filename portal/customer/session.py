"""The customer session: a signed cookie, the embedded (iframe) case, CSRF and page helpers.

Session
    `portal_customer` holds `signer.dumps("customer-session", {"c", "t", "s"})`: the customer
    id, the tenant id and a random token (256 bits) made at every sign-in. The core keeps a
    session row named by the token's SHA-256 (`portal.sessions`), never the token itself; a
    request is signed in only when the signature is good (checked first, so a forged cookie
    costs no database read), the cookie names this request's tenant and the row exists, is
    unexpired and belongs to the same customer: one primary-key read. Signing out deletes the
    row, so a copied cookie stops working at once in every process, and "sign out everywhere"
    deletes every row of the customer. The cookie is HttpOnly, host-only, sent to every path of
    the tenant's host (the chat's socket and the widget's endpoints need it as much as the
    portal's pages; it used to be scoped to `/portal`, and signing out drops that old cookie
    too), lives 14 days, as does the row, and is refused on any other tenant's host. The customer is
    read from the core on every request, so a changed organization takes effect at once.
    `session_data` checks only the signature: it is for callers that merely recognise a visitor
    (the messenger), never for deciding what a signed-in customer may see or do.

SameSite
    Directly on our host the cookie is `SameSite=Lax` (Secure in production). Inside an iframe on
    the company's site a Lax cookie is never sent, and third-party cookies are being phased out,
    so there it is `SameSite=None; Secure; Partitioned` (CHIPS): a cookie kept apart for that
    one top-level site. "Inside an iframe" means the request says `Sec-Fetch-Dest: iframe`, or the
    page was entered with `?embed=1` (forms carry it on as a hidden field). Browsers accept Secure
    cookies only over https, and on http://localhost.

Framing
    Portal pages may be framed by the tenant's own pages only: the CSP's `frame-ancestors` is
    `'self'` plus the origins in the tenant setting `embed_origins` (a list of
    `https://www.example.com`-style origins).

CSRF
    POST forms of a signed-in customer carry `csrf_token(signer, session id)` (the stored id,
    not the cookie's token, so a page's HTML never holds what the cookie holds); in addition, a
    POST whose `Origin` names another host is refused, which also covers the forms without a
    session (sign-in, the confirm button of a magic link, the rating link).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from portal import sessions
from portal.core.contract import Customer, NotFound
from portal.security import CSP, Signer, csrf_ok, csrf_token, signed_session
from portal.templating import gettext as _
from portal.templating import page_language, render, use_language
from portal.tenancy import embed_origins

SESSION_COOKIE = "portal_customer"
SESSION_PATH = "/"
LEGACY_SESSION_PATH = "/portal"  # where cookies set before the widget still live
SESSION_MAX_AGE = 14 * 24 * 3600
SIGN_IN_PATH = "/portal/sign-in"
DEFAULT_NEXT = "/portal/tickets"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Endpoint = Callable[[Request], Awaitable[Response]]


def signer(request: Request) -> Signer:
    return request.state.signer


# ------------------------------------------------------------------ embedding and cookies
def embedded(request: Request, form: Any = None) -> bool:
    """True when this request comes from inside an iframe (header, `?embed=1` or form field)."""
    if request.headers.get("sec-fetch-dest") == "iframe":
        return True
    if request.query_params.get("embed") == "1":
        return True
    return form is not None and form.get("embed") == "1"


def cookie_header(
    request: Request, name: str, value: str, *, max_age: int, path: str, embed: bool
) -> str:
    """A Set-Cookie value. Starlette's `partitioned=` needs Python 3.14, so it is built here."""
    parts = [f"{name}={value}", f"Max-Age={max_age}", f"Path={path}", "HttpOnly"]
    if embed:
        parts += ["Secure", "SameSite=None", "Partitioned"]
    else:
        if request.state.settings.production:
            parts.append("Secure")
        parts.append("SameSite=Lax")
    return "; ".join(parts)


def set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str,
    embed: bool,
) -> None:
    header = cookie_header(request, name, value, max_age=max_age, path=path, embed=embed)
    response.raw_headers.append((b"set-cookie", header.encode("latin-1")))


def delete_cookie(response: Response, request: Request, name: str, path: str) -> None:
    """Drop the cookie from both jars: the first-party one and the iframe's partitioned one."""
    for embed in (False, True):
        set_cookie(response, request, name, "", max_age=0, path=path, embed=embed)


# ------------------------------------------------------------------ session
def session_token(signer: Signer, customer: Customer, token: str) -> str:
    """The cookie's value: the customer, the tenant and the session's random token, signed."""
    return signer.dumps("customer-session", {"c": customer.id, "t": customer.tenant_id, "s": token})


def session_data(request: Request) -> dict[str, Any] | None:
    """The signed payload if valid, unexpired and for this tenant; says nothing of sign-out."""
    return signed_session(
        request,
        SESSION_COOKIE,
        "customer-session",
        SESSION_MAX_AGE,
        tenant_key="t",
        id_key="c",
        sid_key="s",
    )


async def current_session(request: Request) -> tuple[Customer, str] | None:
    """(customer, session id) when the cookie names a live session of this tenant, or None."""
    data = session_data(request)
    if data is None:
        return None
    sid = await sessions.check(request, data["s"], sessions.CUSTOMER, data["c"])
    if sid is None:
        return None
    try:
        customer = await request.state.core.get_customer(request.state.tenant.id, data["c"])
    except NotFound:
        return None
    return customer, sid


async def sign_in(response: Response, request: Request, customer: Customer, *, embed: bool) -> str:
    """Start a session for `customer` and set its cookie; returns the session id."""
    token, sid = await sessions.start(request, sessions.CUSTOMER, customer.id, SESSION_MAX_AGE)
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        session_token(signer(request), customer, token),
        max_age=SESSION_MAX_AGE,
        path=SESSION_PATH,
        embed=embed,
    )
    return sid


def sign_out(response: Response, request: Request) -> None:
    """Drop the cookie; the caller ends the session itself (`sessions.end` or `end_all`)."""
    delete_cookie(response, request, SESSION_COOKIE, SESSION_PATH)
    delete_cookie(response, request, SESSION_COOKIE, LEGACY_SESSION_PATH)


# ------------------------------------------------------------------ redirects and origins
def safe_next(value: str | None) -> str:
    """`value` if it is a path inside /portal on this host, else the ticket list."""
    if not value or len(value) > 2000:
        return DEFAULT_NEXT
    if "\\" in value or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return DEFAULT_NEXT
    if not parts.path.startswith("/portal/") or "/.." in parts.path:
        return DEFAULT_NEXT
    return value


def sign_in_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": here}
    if embedded(request):
        query["embed"] = "1"
    return RedirectResponse(f"{SIGN_IN_PATH}?{urlencode(query)}", status_code=303)


def origin_ok(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


# ------------------------------------------------------------------ pages
def frame_ancestors(request: Request) -> str:
    return " ".join(["'self'", *embed_origins(getattr(request.state, "tenant", None))])


def secure_headers(request: Request, response: Response, *, private: bool = True) -> Response:
    """No caching of private pages; framing allowed to the tenant's own sites only."""
    csp = CSP.replace("frame-ancestors 'self'", f"frame-ancestors {frame_ancestors(request)}")
    response.headers["Content-Security-Policy"] = csp
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response


def page(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a portal page with the customer, the CSRF token and the embed flag in context."""
    context = dict(context or {})
    context.setdefault("customer", getattr(request.state, "customer", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    context.setdefault("embed", embedded(request))
    response = render(
        request,
        name,
        context,
        status_code=status_code,
        language=page_language(request),
        headers=headers,
    )
    secure_headers(request, response)
    return response


def not_found(request: Request) -> HTMLResponse:
    """The same 404 page for a ticket that does not exist and one the customer may not see."""
    return page(request, "errors/404.html", status_code=404)


def csrf_failed(request: Request) -> HTMLResponse:
    return page(
        request,
        "customer/message.html",
        {
            "title": _("This form has expired"),
            "message": _("Please go back, reload the page and try again."),
        },
        status_code=403,
    )


async def form_csrf_ok(request: Request, session_id: str) -> bool:
    if not origin_ok(request):
        return False
    form = await request.form()
    token = form.get("csrf_token")
    return isinstance(token, str) and csrf_ok(signer(request), session_id, token)


# ------------------------------------------------------------------ the decorators
def localized(handler: Endpoint) -> Endpoint:
    """Endpoint decorator: messages made in Python are in the page's language."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        with use_language(page_language(request)):
            return await handler(request)

    return endpoint


def require_customer(handler: Endpoint) -> Endpoint:
    """Endpoint decorator: signed in (else 303 to sign-in) and, for POST, a valid CSRF token.

    The endpoint finds the customer in `request.state.customer`, the session id in
    `request.state.sid` and the form token in `request.state.csrf_token`.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        with use_language(page_language(request)):
            session = await current_session(request)
            if session is None:
                if request.method not in SAFE_METHODS:
                    return csrf_failed(request)
                return sign_in_redirect(request)
            customer, sid = session
            request.state.customer = customer
            request.state.sid = sid
            request.state.csrf_token = csrf_token(signer(request), sid)
            if request.method not in SAFE_METHODS and not await form_csrf_ok(request, sid):
                return csrf_failed(request)
            return await handler(request)

    return endpoint
