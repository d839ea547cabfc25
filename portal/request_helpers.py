"""What handlers read from a request, and the small answers they give, written once.

- The request's own values, set before the handler runs: `tenant_of` (tenancy middleware),
  `agent_of` (`require_agent`), `customer_of` and `session_id_of` (`require_customer`),
  `csrf_token_of` (either). The app's shared objects come from `portal.services.services`.
- Form input: `form_text`, `length_error`.
- Ids: `MAX_DB_ID`, `parse_id` for a submitted one, `db_id` for one in the path (a 404 past it).
- Answers: `redirect_to` a named page (Post/Redirect/Get), `not_found_error` (a 404).
- The Origin check of unsafe requests: `same_origin` (websockets have their own rule, see
  `portal.messenger.sockets.origin_allowed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse

from portal.i18n import gettext
from portal.urls import path_for

if TYPE_CHECKING:
    from portal.core.contract import Agent, Customer, Tenant

# Ids are INTEGER columns (32-bit in PostgreSQL; see portal/core/embedded/schema.py): a larger
# one names no row, and PostgreSQL would refuse it as a parameter rather than find nothing.
MAX_DB_ID = 2**31 - 1


# ------------------------------------------------------------------ the request's own values
def tenant_of(connection: HTTPConnection) -> Tenant:
    """The tenant the request's (or websocket's) host names."""
    # The scope's state itself: `connection.state` wraps it in a new object per request object,
    # and a page asks several times.
    tenant: Tenant = connection.scope["state"]["tenant"]
    return tenant


def agent_of(request: Request) -> Agent:
    """The signed-in agent, in handlers behind `require_agent`."""
    agent: Agent = request.state.agent
    return agent


def customer_of(request: Request) -> Customer:
    """The signed-in customer, in handlers behind `require_customer`."""
    customer: Customer = request.state.customer
    return customer


def session_id_of(request: Request) -> str:
    """The signed-in customer's session id, in handlers behind `require_customer`."""
    sid: str = request.state.sid
    return sid


def csrf_token_of(request: Request) -> str:
    """The form token of the signed-in session ("" before anyone signed in)."""
    token: str = getattr(request.state, "csrf_token", "")
    return token


# ------------------------------------------------------------------ form input
def form_text(form: FormData, name: str) -> str:
    """A submitted text field, stripped; "" when it is missing or a file."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def length_error(value: str, minimum: int, maximum: int) -> str | None:
    """The error for a value shorter than `minimum` (required) or longer than `maximum`."""
    if len(value) < minimum:
        return gettext("This field is required.")
    if len(value) > maximum:
        return gettext("Use at most %(max)d characters.") % {"max": maximum}
    return None


# ------------------------------------------------------------------ ids
def parse_id(raw: str) -> int | None:
    """A submitted id, or None when it is not one (or one no row can have)."""
    if not raw.isdigit() or len(raw) > 18:
        return None
    value = int(raw)
    return value if value <= MAX_DB_ID else None


def db_id(request: Request, name: str, message: str | None = None) -> int:
    """A path id (an `int` route parameter), or a 404 for one no database row can have."""
    value: int = request.path_params[name]
    if value > MAX_DB_ID:
        raise not_found_error(message or gettext("There is no such page."))
    return value


# ------------------------------------------------------------------ answers
def redirect_to(request: Request, name: str, query: str = "", **params: Any) -> RedirectResponse:
    """The 303 to a named page (Post/Redirect/Get), with `query` to show a flash message."""
    path = path_for(request, name, **params)
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def not_found_error(message: str) -> HTTPException:
    """A 404 with a message for the page."""
    return HTTPException(404, message)


# ------------------------------------------------------------------ Origin
def origin_names_host(origin: str, host: str) -> bool:
    """True when the Origin header's site is `host` (the request's Host header)."""
    host = host.lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


def same_origin(request: Request) -> bool:
    """False when the browser says an unsafe request comes from another site.

    Browsers send Origin on cross-site form posts and fetches; it is checked only when present,
    because some clients omit it on same-site requests (the CSRF token covers those).
    """
    origin = request.headers.get("origin")
    return origin is None or origin_names_host(origin, request.headers.get("host", ""))
