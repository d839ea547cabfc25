"""Pages inside the company's own sites: which sites may frame them, telling a framed request
apart, and cookies that still work there.

Framing
    Every customer app's pages (help center, forms, messenger, portal, widget panel) may be
    framed by the tenant's own sites only: the CSP's `frame-ancestors` is `'self'` plus the
    origins in the tenant setting `embed_origins` (a list of `https://www.example.com`-style
    origins), or any site when the tenant chose so explicitly (`embed_any_site`). The staff's
    pages (`/admin`, `/agent`) are never framed by another site. The same list says which
    sites may open the chat's socket (`portal.messenger.sockets`), and where a framed page
    reports its height (`static/embed/frame.js`, always to the one parent origin it found).

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
from starlette.types import Scope

from portal.core.contract import Tenant
from portal.security import CSP
from portal.services import services

# The staff's pages: never framed by a customer's site, whatever the tenant allows its apps.
STAFF_PREFIXES = ("/admin", "/agent")
# A site as browsers send it in Origin: scheme, host and maybe a port, nothing more.
ORIGIN_RE = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")


def embed_origins(tenant: Tenant | None) -> list[str]:
    """The sites (`https://host[:port]`) a tenant lets embed its pages and open chat sockets."""
    allowed = tenant.settings.get("embed_origins", []) if tenant is not None else []
    if isinstance(allowed, str):
        allowed = allowed.split()
    origins = (o.rstrip("/").lower() for o in allowed if isinstance(o, str))
    return [o for o in origins if ORIGIN_RE.fullmatch(o)]


def parse_origins(text: str) -> tuple[list[str], list[str]]:
    """(the sites written one per line or space, normalized; those that are no site)."""
    origins = list(dict.fromkeys(o.rstrip("/").lower() for o in text.split() if o))
    return origins, [o for o in origins if not ORIGIN_RE.fullmatch(o)]


def embeds_anywhere(tenant: Tenant | None) -> bool:
    """Whether the tenant chose to let any site frame its apps."""
    return tenant is not None and tenant.settings.get("embed_any_site") is True


def tenant_frame_ancestors(tenant: Tenant | None) -> str:
    """The CSP `frame-ancestors` sources of a tenant's customer pages."""
    if embeds_anywhere(tenant):
        return "*"
    return " ".join(["'self'", *embed_origins(tenant)])


def tenant_csp(tenant: Tenant | None) -> str:
    """The Content-Security-Policy of a tenant's customer pages."""
    return CSP.replace(
        "frame-ancestors 'self'", f"frame-ancestors {tenant_frame_ancestors(tenant)}"
    )


class TenantCSP:
    """For `SecurityHeadersMiddleware`: the CSP of a tenant's customer pages, encoded once per
    tenant as the resolver gives it; None (the strict default) for staff pages and others."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._kept: dict[int, tuple[Tenant, bytes]] = {}

    def __call__(self, scope: Scope) -> bytes | None:
        tenant: Tenant | None = scope.get("state", {}).get("tenant")
        if tenant is None or scope["path"].startswith(STAFF_PREFIXES):
            return None
        kept = self._kept.get(tenant.id)
        if kept is not None and kept[0] is tenant:
            return kept[1]
        value = tenant_csp(tenant).encode()
        if len(self._kept) >= self.max_entries:
            self._kept.clear()
        self._kept[tenant.id] = (tenant, value)
        return value


def embedded(request: Request, form: Any = None) -> bool:
    """True when this request comes from inside an iframe (header, `?embed=1` or form field)."""
    if request.headers.get("sec-fetch-dest") == "iframe":
        return True
    if request.query_params.get("embed") == "1":
        return True
    return form is not None and form.get("embed") == "1"


def secure_headers(response: Response) -> Response:
    """No caching of a private page. (Framing by the tenant's own sites only is every customer
    page's CSP, which `SecurityHeadersMiddleware` adds with `TenantCSP`.)"""
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
