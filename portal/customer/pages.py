"""How the customer portal answers: its pages, its refusals, and the guard of signed-in pages.

`page` renders with the customer, the CSRF token and the embed flag in context, private (never
cached) and framed by the tenant's own sites only (`portal.embedding`). A page kept for many
answers (the ticket list, `portal.customer.lists`) is rendered once by `keepable_page`, with a
place left for the CSRF token, and answered by `kept_page`: the same page with this session's.

`require_customer` stands in front of every page of a signed-in customer: no session is a 303 to
the sign-in page (or, for a POST, the "form has expired" page), and a POST must carry the
session's CSRF token (`portal.csrf`). The session itself is `portal.sessions.customer`'s.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from portal.core.contract import Tenant
from portal.csrf import SAFE_METHODS, form_csrf_ok
from portal.embedding import embedded, secure_headers
from portal.i18n import gettext as _
from portal.kb.store import RenderedPage
from portal.redirects import customer_sign_in_redirect
from portal.request_helpers import csrf_token_of, tenant_of
from portal.services import services
from portal.sessions.customer import current_session
from portal.templating import render, render_html

Endpoint = Callable[[Request], Awaitable[Response]]


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
    context.setdefault("csrf_token", csrf_token_of(request))
    context.setdefault("embed", embedded(request))
    response = render(request, name, context, status_code=status_code, headers=headers)
    secure_headers(response)
    return response


# Where a kept page has the session's CSRF token: one page answers many requests, and a session
# renews its token now and then.
_CSRF_SLOT = f"csrf-token-{secrets.token_hex(16)}"


@dataclass(frozen=True, slots=True)
class KeptPage:
    """A page rendered once to answer many requests, with the headers `page` gives it (they
    depend on the tenant only, which the page is kept with)."""

    rendered: RenderedPage
    headers: tuple[tuple[bytes, bytes], ...]

    @property
    def tenant(self) -> Tenant:
        return self.rendered.tenant


def keepable_page(request: Request, name: str, context: dict[str, Any]) -> KeptPage:
    """A page as `page` renders it, to keep: a place left wherever the CSRF token goes.

    `context` must name everything else the page shows per request (the header's `site_nav`
    too), and the caller keeps the page under all of it."""
    context = {
        "customer": getattr(request.state, "customer", None),
        "embed": embedded(request),
        **context,
        "csrf_token": _CSRF_SLOT,
    }
    html = render_html(request, name, context)
    parts = tuple(part.encode() for part in html.split(_CSRF_SLOT))
    probe = secure_headers(Response())
    headers = tuple(
        h for h in probe.raw_headers if h[0] not in (b"content-length", b"content-type")
    )
    return KeptPage(RenderedPage.of(tenant_of(request), parts), headers)


def kept_page(request: Request, kept: KeptPage) -> Response:
    """A kept page's answer with this session's CSRF token, headers as `page` sets them; gzipped
    as kept for a client that takes gzip (the compression middleware lets it pass)."""
    return kept.rendered.answer(request.scope, csrf_token_of(request), headers=kept.headers)


def not_found(request: Request) -> HTMLResponse:
    """The same 404 page for a ticket that does not exist and one the customer may not see."""
    return page(request, "errors/404.html", status_code=404)


def csrf_failed(request: Request) -> HTMLResponse:
    """The 403 for a form that is too old or was not sent from our page."""
    return page(
        request,
        "customer/message.html",
        {
            "title": _("This form has expired"),
            "message": _("Please go back, reload the page and try again."),
        },
        status_code=403,
    )


def require_customer(handler: Endpoint) -> Endpoint:
    """Endpoint decorator: signed in (else 303 to sign-in) and, for POST, a valid CSRF token.

    The endpoint reads the customer with `customer_of(request)`, the session id with
    `session_id_of(request)` and the form token with `csrf_token_of(request)`
    (`portal.request_helpers`).
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        session = await current_session(request)
        if session is None:
            if request.method not in SAFE_METHODS:
                return csrf_failed(request)
            return customer_sign_in_redirect(request)
        customer, sid = session
        request.state.customer = customer
        request.state.sid = sid
        app = services(request)
        request.state.csrf_token = app.sessions.csrf_token(app.signer, sid)
        if request.method not in SAFE_METHODS and not await form_csrf_ok(request, sid):
            return csrf_failed(request)
        return await handler(request)

    return endpoint
