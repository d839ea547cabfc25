"""Paths and absolute URLs, built one way each; route lookups are cached per app.

- `path_for(request, name, **params)`: a named route's path (templates' `url_for` is this).
- `absolute(request, path)`: a URL on the request's own host, for pages and API answers.
- `tenant_url(settings, tenant, path)`: a URL on the tenant's canonical host, for mail, which
  must never trust a Host header the client chose; `TenantURLs` builds those for named routes
  outside a request (the mail and chat tasks). `request_tenant_url(request, tenant, path)`:
  for mail a request sends, on the tenant's host the customer is on (a custom domain or not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from starlette.routing import NoMatchFound, Router

from portal.services import services
from portal.tenancy import normalize_host, valid_host

if TYPE_CHECKING:
    from portal.core.contract import Tenant
    from portal.settings import Settings


class URLPathStr(str):
    """A path; `.path` too, so templates written for Starlette's URL objects keep working."""

    @property
    def path(self) -> str:
        return str(self)


class PathCache:
    """Named-route paths of one router, remembered; Starlette scans every route per lookup."""

    def __init__(self, router: Router, max_entries: int = 65536) -> None:
        self.router = router
        self.max_entries = max_entries
        # Plain strings, made a URLPathStr per call: an instance of a class of ours is an object
        # the garbage collector walks on every full pass, and a big help center has 10,000s.
        self._paths: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}
        # (name, parameter names) -> the position of the route that builds it
        self._routes: dict[tuple[str, frozenset[str]], int] = {}

    def path_for(self, name: str, params: dict[str, Any]) -> URLPathStr:
        if "token" in params:
            # A signed token in the path is used once: caching it would only evict the rest.
            return URLPathStr(self._build(name, params))
        key = (name, tuple(sorted(params.items())))
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= self.max_entries:
                self._paths.clear()
            path = self._paths[key] = self._build(name, params)
        return URLPathStr(path)

    def _build(self, name: str, params: dict[str, Any]) -> str:
        """What `router.url_path_for` gives, without trying every route before the right one.

        A route refuses a name by the name and the parameters' names alone, never their values,
        so the route that first built (name, parameter names) is the one the router would find.
        """
        kind = (name, frozenset(params))
        found = self._routes.get(kind)
        if found is not None:
            return str(self.router.routes[found].url_path_for(name, **params))
        for position, route in enumerate(self.router.routes):
            try:
                path = route.url_path_for(name, **params)
            except NoMatchFound:
                continue
            self._routes[kind] = position
            return str(path)
        raise NoMatchFound(name, params)


def path_for(connection: HTTPConnection, name: str, /, **params: Any) -> URLPathStr:
    """The path of the named route, e.g. `/kb/en/articles/reset-password`."""
    return services(connection).paths.path_for(name, params)


def absolute(connection: HTTPConnection, path: str) -> str:
    """A public absolute URL on the request's host with the configured scheme."""
    scheme = services(connection).settings.public_scheme
    host = connection.headers.get("host")
    if host is None:  # (only then: the URL object is made per call)
        host = connection.url.netloc
    return f"{scheme}://{host}{path}"


class TenantURLs:
    """Named routes' paths and URLs for work done outside a request (mail, chat fan-out)."""

    def __init__(self, settings: Settings, paths: PathCache) -> None:
        self.settings = settings
        self.paths = paths

    def path(self, name: str, /, **params: Any) -> URLPathStr:
        return self.paths.path_for(name, params)

    def url(self, tenant: Tenant, name: str, /, **params: Any) -> str:
        """The named route's absolute URL on the tenant's canonical host."""
        return tenant_url(self.settings, tenant, self.path(name, **params))


def tenant_url(settings: Settings, tenant: Tenant, path: str) -> str:
    """A public absolute URL on the tenant's canonical host: its first verified custom domain,
    else `{slug}.{base_domain}` (links in mail, where no request's Host can be trusted).
    `Tenant.domains` holds verified domains only: a pending or failed one is never linked."""
    host = tenant.domains[0] if tenant.domains else f"{tenant.slug}.{settings.base_domain}"
    return _public_url(settings, host, path)


def request_tenant_url(connection: HTTPConnection, tenant: Tenant, path: str) -> str:
    """A URL for mail a request sends (a magic link), on the host the customer is on.

    The request's host counts only when it names `tenant` (the tenancy middleware found the
    tenant by it: its subdomain or a verified custom domain), so a client's Host can choose
    among the tenant's own hosts and nothing else; the port it sent is dropped. Otherwise the
    canonical host (`tenant_url`). A link on the customer's host meets the cookies set there.
    """
    settings = services(connection).settings
    state_tenant = connection.scope.get("state", {}).get("tenant")
    host = connection.headers.get("host", "")
    if state_tenant is None or state_tenant.id != tenant.id or not valid_host(host):
        return tenant_url(settings, tenant, path)
    return _public_url(settings, normalize_host(host), path)


def _public_url(settings: Settings, host: str, path: str) -> str:
    if not settings.production and settings.port not in ("80", "443"):
        host = f"{host}:{settings.port}"  # `portal serve` in development: links that work
    return f"{settings.public_scheme}://{host}{path}"
