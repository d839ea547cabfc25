"""The customer session: the portal's, the chat's and the widget's signed-in customer.

`portal_customer` holds `signer.dumps("customer-session", {"c", "t", "s"})`: the customer id,
the tenant id and a random token (256 bits) made at every sign-in. The core keeps a session row
named by the token's SHA-256 (`portal.sessions.store`), never the token itself; a request is
signed in only when the signature is good (checked first, so a forged cookie costs no database
read), the cookie names this request's tenant and the row exists, is unexpired and belongs to the
same customer. The row is read once and kept until the core says the session ended
(`portal.sessions.cache`). Signing out deletes the row and the core tells every process, so a
copied cookie stops working at once everywhere; "sign out everywhere" deletes (and tells of)
every row of the customer.

The cookie is HttpOnly, host-only, sent to every path of the tenant's host (the chat's socket
and the widget's endpoints need it as much as the portal's pages; it used to be scoped to
`/portal`, and signing out drops that old cookie too), lives 14 days, as does the row, and is
refused on any other tenant's host. Inside an iframe it is partitioned (`portal.embedding`).
The customer comes from the app's `SessionCache`, which the core's `customer.changed` events
(from every process) keep current, so a changed organization takes effect as soon as the event
arrives. `session_data` checks only the signature (once per request; a cookie seen in the last
minute is not checked again, `SessionCache.verified`): it is for callers that merely recognise
a visitor (the messenger, the header's "My tickets"), never for deciding what a signed-in
customer may see or do.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from portal.asgi_headers import header
from portal.core.contract import Customer, NotFound
from portal.embedding import delete_cookie, set_cookie
from portal.request_helpers import tenant_of
from portal.security import Signer
from portal.services import services
from portal.sessions import store

SESSION_COOKIE = "portal_customer"
SESSION_PATH = "/"
LEGACY_SESSION_PATH = "/portal"  # where cookies set before the widget still live
SESSION_MAX_AGE = 14 * 24 * 3600


def session_token(signer: Signer, customer: Customer, token: str) -> str:
    """The cookie's value: the customer, the tenant and the session's random token, signed."""
    return signer.dumps("customer-session", {"c": customer.id, "t": customer.tenant_id, "s": token})


_CHECKED = "customer_session_data"  # where a request keeps what its cookie said


def session_data(connection: HTTPConnection) -> dict[str, Any] | None:
    """The signed payload if valid, unexpired and for this tenant; says nothing of sign-out."""
    # A page asks twice (its guard and its header): the signature is checked once per request
    # (and tenant, which the answer depends on).
    state = connection.scope.setdefault("state", {})
    tenant = state.get("tenant")
    tenant_id = tenant.id if tenant is not None else None
    kept = state.get(_CHECKED)
    if kept is not None and kept[0] == tenant_id:
        found: dict[str, Any] | None = kept[1]
        return found
    found = None
    # Most requests carry no cookie at all: then no cookie parser is made.
    has_cookies = header(connection.scope, b"cookie") is not None
    token = connection.cookies.get(SESSION_COOKIE) if has_cookies else None
    if token and tenant_id is not None:
        app = services(connection)
        data = app.sessions.verified(app.signer, "customer-session", token, SESSION_MAX_AGE)
        # As `portal.security.signed_session` checks a payload: this tenant's, well formed.
        if (
            isinstance(data, dict)
            and data.get("t") == tenant_id
            and isinstance(data.get("c"), int)
            and isinstance(data.get("s"), str)
        ):
            found = data
    state[_CHECKED] = (tenant_id, found)
    return found


async def current_session(connection: HTTPConnection) -> tuple[Customer, str] | None:
    """(customer, session id) when the cookie names a live session of this tenant, or None."""
    data = session_data(connection)
    if data is None:
        return None
    sid = await store.check(connection, data["s"], store.CUSTOMER, data["c"])
    if sid is None:
        return None
    app = services(connection)
    try:
        customer = await app.sessions.customer(app.core, tenant_of(connection).id, data["c"])
    except NotFound:
        return None
    return customer, sid


async def sign_in(response: Response, request: Request, customer: Customer, *, embed: bool) -> str:
    """Start a session for `customer` and set its cookie; returns the session id."""
    token, sid = await store.start(request, store.CUSTOMER, customer.id, SESSION_MAX_AGE)
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        session_token(services(request).signer, customer, token),
        max_age=SESSION_MAX_AGE,
        path=SESSION_PATH,
        embed=embed,
    )
    return sid


def sign_out(response: Response, request: Request) -> None:
    """Drop the cookie; the caller ends the session itself (`store.end` or `store.end_all`)."""
    delete_cookie(response, request, SESSION_COOKIE, SESSION_PATH)
    delete_cookie(response, request, SESSION_COOKIE, LEGACY_SESSION_PATH)
