"""URL building that stays cheap on hot pages: route lookups are cached per app."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Router


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
        self._paths: dict[tuple[str, tuple[tuple[str, Any], ...]], URLPathStr] = {}

    def path_for(self, name: str, params: dict[str, Any]) -> URLPathStr:
        key = (name, tuple(sorted(params.items())))
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= self.max_entries:
                self._paths.clear()
            path = self._paths[key] = URLPathStr(self.router.url_path_for(name, **params))
        return path


def path_for(request: Request, name: str, /, **params: Any) -> URLPathStr:
    """The path of the named route, e.g. `/kb/en/articles/reset-password`."""
    return request.app.state.paths.path_for(name, params)


def absolute(request: Request, path: str) -> str:
    """A public absolute URL on the request's host with the configured scheme."""
    scheme = request.state.settings.public_scheme
    return f"{scheme}://{request.headers.get('host', request.url.netloc)}{path}"
