"""Where a sign-in may send the browser next, and the redirects to the sign-in pages.

A `next` value comes from a query string or a form, so anyone can write it: it is followed only
when it is a plain path inside the area it is meant for (`/admin` and `/agent` for staff,
`/portal/` for customers) on this host, else the area's home is used. No scheme, no host, no
`//`, no backslash, no control characters: never an open redirect.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse

from portal.embedding import embedded

STAFF_LOGIN_PATH = "/admin/login"
STAFF_HOME = "/admin/"
STAFF_AREAS = ("/admin", "/agent")  # where `next` may send a signed-in agent
CUSTOMER_SIGN_IN_PATH = "/portal/sign-in"
CUSTOMER_HOME = "/portal/tickets"


def _local_path(value: str | None) -> str | None:
    """`value` when it is a path on this host (nothing that names another site), else None."""
    if not value or len(value) > 2000:
        return None
    if "\\" in value or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return None
    return value


def safe_staff_next(value: str | None) -> str:
    """`value` if it is a path inside /admin or /agent on this host, else the dashboard."""
    path = _local_path(value)
    if path is None:
        return STAFF_HOME
    here = urlsplit(path).path
    if not any(here == area or here.startswith(area + "/") for area in STAFF_AREAS):
        return STAFF_HOME
    return path


def safe_customer_next(value: str | None) -> str:
    """`value` if it is a path inside /portal/ on this host, else the ticket list."""
    path = _local_path(value)
    if path is None:
        return CUSTOMER_HOME
    here = urlsplit(path).path
    if not here.startswith("/portal/") or "/.." in here:
        return CUSTOMER_HOME
    return path


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def staff_login_redirect(request: Request) -> RedirectResponse:
    """The 303 to the staff login page, which comes back here after signing in."""
    return RedirectResponse(
        f"{STAFF_LOGIN_PATH}?{urlencode({'next': _here(request)})}", status_code=303
    )


def customer_sign_in_redirect(request: Request) -> RedirectResponse:
    """The 303 to the customer sign-in page (in the frame, when framed), and back here after."""
    query = {"next": _here(request)}
    if embedded(request):
        query["embed"] = "1"
    return RedirectResponse(f"{CUSTOMER_SIGN_IN_PATH}?{urlencode(query)}", status_code=303)
