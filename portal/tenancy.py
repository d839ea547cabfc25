"""Host header -> tenant: `{slug}.{base_domain}` or a registered custom domain."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable
from typing import Any, Literal, TypeVar, cast

from starlette.types import ASGIApp, Receive, Scope, Send

from portal.asgi_headers import header
from portal.core.contract import HelpdeskCore, NotFound, Tenant

# Paths that answer for any host: health checks, metrics, static files, the TLS "ask" endpoint,
# the operators' API and the core's webhooks.
TENANTLESS_PREFIXES = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/",
    "/_tls/ask",
    "/_platform/",
    "/_core/",
)

T = TypeVar("T")


# A DNS name or IPv4 address with an optional port, or a bracketed IPv6 literal with one.
_VALID_HOST = re.compile(r"(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def valid_host(host: str) -> bool:
    """False for Host headers that are no host at all (`a.com:1@evil.com`, spaces, slashes)."""
    return _VALID_HOST.fullmatch(host.strip().lower()) is not None


def normalize_host(host: str) -> str:
    """Lower-case host without port or trailing dot; IPv6 literals keep their brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


class TenantResolver:
    """Resolves hosts to tenants with a short cache; `forget()` drops it after a change.

    It also keeps what pages derive from a tenant (`derived`: the header's items), so that a
    change of the tenant, heard in every process (`tenant.changed`), drops both at once.
    """

    def __init__(
        self, core: HelpdeskCore, base_domain: str, ttl: float = 30.0, max_entries: int = 10_000
    ) -> None:
        self.core = core
        self.base_domain = base_domain.lower().strip(".")
        self.ttl = ttl
        self.max_entries = max_entries
        # Keyed by the host as the request sent it: most requests skip normalizing it.
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._derived: dict[tuple[int, Hashable], tuple[Tenant, Any]] = {}

    def slug_for(self, host: str) -> str | None:
        """The tenant slug encoded in a `{slug}.{base_domain}` host, if it is one."""
        suffix = "." + self.base_domain
        if host.endswith(suffix):
            slug = host[: -len(suffix)]
            if slug and "." not in slug:
                return slug
        return None

    def cached(self, host: str) -> Tenant | None | Literal[False]:
        """The tenant of `host` if known and fresh (None: no tenant's); False when not known.

        Only well-formed hosts are ever kept, so a hit needs no `valid_host` check."""
        found = self._cache.get(host)
        if found is not None and found[0] > time.monotonic():
            return found[1]
        return False

    async def resolve(self, host: str) -> Tenant | None:
        known = self.cached(host)
        if known is not False:
            return known
        tenant: Tenant | None
        try:
            name = normalize_host(host)
            slug = self.slug_for(name)
            if slug is not None:
                tenant = await self.core.tenants.get_tenant(slug)
            else:
                tenant = await self.core.tenants.get_tenant_by_domain(name)
        except NotFound:
            tenant = None
        if not valid_host(host):
            # (The TLS "ask" resolves any text.) Kept only for hosts a request may name: the
            # middleware's `cached` must never give a malformed Host a tenant.
            return tenant
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # hostile Host headers must not grow memory without bound
        self._cache[host] = (time.monotonic() + self.ttl, tenant)
        return tenant

    def derived(self, tenant: Tenant, key: Hashable, build: Callable[[], T]) -> T:
        """`build()`, kept per tenant and `key` while the tenant is the same as when it was built.

        For what pages make from a tenant's settings on every request (the header's items).
        `forget()` drops it with the tenants; a tenant read again after its cache time is
        compared with the one the value was built from, so no change goes unseen.
        """
        found = self._derived.get((tenant.id, key))
        if found is not None:
            built_from, value = found
            if built_from is tenant:
                return cast(T, value)
            if built_from == tenant:  # read again, unchanged
                self._derived[(tenant.id, key)] = (tenant, value)
                return cast(T, value)
        value = build()
        if len(self._derived) >= self.max_entries:
            self._derived.clear()
        self._derived[(tenant.id, key)] = (tenant, value)
        return value

    def forget(self) -> None:
        self._cache.clear()
        self._derived.clear()


class TenancyMiddleware:
    """Puts the request's tenant in its state (`tenant_of(request)` reads it), or answers 404
    for unknown hosts."""

    def __init__(self, app: ASGIApp, not_found_app: ASGIApp) -> None:
        self.app = app
        self.not_found_app = not_found_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(
            TENANTLESS_PREFIXES
        ):
            await self.app(scope, receive, send)
            return
        raw_host = header(scope, b"host")
        host = raw_host.decode("latin-1") if raw_host is not None else ""
        resolver: TenantResolver = scope["state"]["services"].tenants
        tenant = resolver.cached(host)
        if tenant is False:
            # A malformed Host must not pick a tenant: pages build absolute links from it.
            tenant = await resolver.resolve(host) if valid_host(host) else None
        if tenant is None:
            await self.not_found_app(scope, receive, send)
            return
        scope["state"]["tenant"] = tenant
        await self.app(scope, receive, send)
