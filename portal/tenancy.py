"""Host header -> tenant: `{slug}.{base_domain}` or a registered custom domain."""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from portal.core.contract import HelpdeskCore, NotFound, Tenant

# Paths that answer for any host: health checks, static files and the TLS "ask" endpoint.
TENANTLESS_PREFIXES = ("/healthz", "/static/", "/_tls/ask")


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
    """Resolves hosts to tenants with a short cache; `forget()` drops it after a change."""

    def __init__(self, core: HelpdeskCore, base_domain: str, ttl: float = 30.0) -> None:
        self.core = core
        self.base_domain = base_domain.lower().strip(".")
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Tenant | None]] = {}

    def slug_for(self, host: str) -> str | None:
        """The tenant slug encoded in a `{slug}.{base_domain}` host, if it is one."""
        suffix = "." + self.base_domain
        if host.endswith(suffix):
            slug = host[: -len(suffix)]
            if slug and "." not in slug:
                return slug
        return None

    async def resolve(self, host: str) -> Tenant | None:
        host = normalize_host(host)
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant: Tenant | None
        try:
            slug = self.slug_for(host)
            if slug is not None:
                tenant = await self.core.tenants.get_tenant(slug)
            else:
                tenant = await self.core.tenants.get_tenant_by_domain(host)
        except NotFound:
            tenant = None
        if len(self._cache) > 10_000:
            self._cache.clear()  # hostile Host headers must not grow memory without bound
        self._cache[host] = (now + self.ttl, tenant)
        return tenant

    def forget(self) -> None:
        self._cache.clear()


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
        host = ""
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
                break
        resolver: TenantResolver = scope["state"]["services"].tenants
        # A malformed Host must not pick a tenant: pages build absolute links from it.
        tenant = await resolver.resolve(host) if valid_host(host) else None
        if tenant is None:
            await self.not_found_app(scope, receive, send)
            return
        scope["state"]["tenant"] = tenant
        await self.app(scope, receive, send)
