"""Pages inside the company's own sites: which sites may frame them, telling a framed request
apart, and cookies that still work there.

Framing
    Portal pages may be framed by the tenant's own pages only: the CSP's `frame-ancestors` is
    `'self'` plus the origins in the tenant setting `embed_origins` (a list of
    `https://www.example.com`-style origins). The same list says which sites may open the chat's
    socket (`portal.messenger.sockets`).

Inside an iframe
    A request is framed when it says `Sec-Fetch-Dest: iframe`, or the page was entered with
    `?embed=1` (forms carry it on as a hidden field).

Cookies (SameSite)
    Directly on our host a cookie is `SameSite=Lax` (Secure in production). Inside an iframe on
    the company's site a Lax cookie is never sent, and third-party cookies are being phased out,
    so there it is `SameSite=None; Secure; Partitioned` (CHIPS): a cookie kept apart for that
    one top-level site. Browsers accept Secure cookies only over https, and on
    http://localhost.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.core.contract import Tenant
from portal.security import CSP
from portal.services import services

# A site as browsers send it in Origin: scheme, host and maybe a port, nothing more.
ORIGIN_RE = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")


def embed_origins(tenant: Tenant | None) -> list[str]:
    """The sites (`https://host[:port]`) a tenant lets embed its pages and open chat sockets."""
    allowed = tenant.settings.get("embed_origins", []) if tenant is not None else []
    if isinstance(allowed, str):
        allowed = allowed.split()
    origins = (o.rstrip("/").lower() for o in allowed if isinstance(o, str))
    return [o for o in origins if ORIGIN_RE.fullmatch(o)]


def embedded(request: Request, form: Any = None) -> bool:
    """True when this request comes from inside an iframe (header, `?embed=1` or form field)."""
    if request.headers.get("sec-fetch-dest") == "iframe":
        return True
    if request.query_params.get("embed") == "1":
        return True
    return form is not None and form.get("embed") == "1"


def frame_ancestors(request: Request) -> str:
    """The CSP `frame-ancestors` sources: ourselves and the tenant's own sites."""
    return " ".join(["'self'", *embed_origins(getattr(request.state, "tenant", None))])


def secure_headers(request: Request, response: Response, *, private: bool = True) -> Response:
    """No caching of private pages; framing allowed to the tenant's own sites only."""
    csp = CSP.replace("frame-ancestors 'self'", f"frame-ancestors {frame_ancestors(request)}")
    response.headers["Content-Security-Policy"] = csp
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------ cookies
def cookie_header(
    request: Request, name: str, value: str, *, max_age: int, path: str, embed: bool
) -> str:
    """A Set-Cookie value. Starlette's `partitioned=` needs Python 3.14, so it is built here."""
    parts = [f"{name}={value}", f"Max-Age={max_age}", f"Path={path}", "HttpOnly"]
    if embed:
        parts += ["Secure", "SameSite=None", "Partitioned"]
    else:
        if services(request).settings.production:
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
    """Set a cookie that works where the page is: first-party, or partitioned in an iframe."""
    header = cookie_header(request, name, value, max_age=max_age, path=path, embed=embed)
    response.raw_headers.append((b"set-cookie", header.encode("latin-1")))


def delete_cookie(response: Response, request: Request, name: str, path: str) -> None:
    """Drop the cookie from both jars: the first-party one and the iframe's partitioned one."""
    for embed in (False, True):
        set_cookie(response, request, name, "", max_age=0, path=path, embed=embed)
