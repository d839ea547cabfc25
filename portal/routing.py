"""A router that tries only the routes a path could match, in their order.

Starlette's `Router` tries every route in turn until one matches, about 2 µs a route: the portal's
ticket list is the 28th of some 50, so a page spent more time finding its handler than checking
its session. Routes whose path starts with a fixed segment (`/kb/...`, `/portal/...`, `/admin`)
can only match paths with that first segment, so `IndexedRouter` keeps, for each first segment,
the routes that could match it (those with that segment, and any whose first segment is a
parameter), in the table's order. The first match is therefore the one Starlette would pick;
partial matches (405), slash redirects and the 404 work as Starlette's do. What a path matched
is remembered (its route and path parameters depend on nothing else), so a hot page's second
request tries no route at all. It is remembered as objects the garbage collector need not walk:
a big help center's paths are thousands, and each full collection walked every one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.datastructures import URL
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send

_ANY = "{"  # the key of routes whose first segment is a parameter: they may match any path
MAX_MATCHES = 10_000  # paths whose route is remembered (a help center's hot set, and more)

_Items = tuple[tuple[str, Any], ...]
_Match = tuple[int, int, _Items | None]  # see `IndexedRouter._matches`


def first_segment(path: str) -> str:
    """`kb` for `/kb/en/articles/x`, `` for `/`."""
    return path[1:].split("/", 1)[0]


def _segment_of(route: BaseRoute) -> str:
    path = route.path if isinstance(route, (Route, WebSocketRoute, Mount)) else "{"
    segment = first_segment(path)
    return _ANY if "{" in segment or not path.startswith("/") else segment


class IndexedRouter(Router):
    """Starlette's `Router`, trying only the routes that share the path's first segment."""

    def __init__(self, routes: Sequence[BaseRoute] | None = None, **options: Any) -> None:
        super().__init__(routes, **options)
        self._index()

    def _index(self) -> None:
        segments = {_segment_of(route) for route in self.routes}
        self._by_segment = {
            segment: tuple(r for r in self.routes if _segment_of(r) in (segment, _ANY))
            for segment in segments
        }
        self._anywhere = self._by_segment.get(_ANY, ())
        self._indexed = list(self.routes)
        # path -> (the route's position, the position of the scope's other additions, path
        # parameters): numbers and strings only, which the garbage collector stops tracking, so
        # a remembered path is nothing for its full passes to walk (it was a tuple and two
        # dicts). The additions are shared by every path of a route.
        self._matches: dict[tuple[Any, ...], _Match] = {}
        self._additions: dict[_Items, int] = {}
        self._addition_list: list[_Items] = []

    def candidates(self, scope: Scope) -> tuple[BaseRoute, ...]:
        """The routes that could match the scope's path, in the table's order."""
        if self._indexed != self.routes:  # routes added after construction
            self._index()
        segment = first_segment(get_route_path(scope))
        return self._by_segment.get(segment, self._anywhere)

    def _matched(self, scope: Scope) -> tuple[BaseRoute, _Items, _Items | None] | None:
        """The route for the scope (its first full match, else its first partial) and the
        scope's additions; remembered per path, since only the path and method decide."""
        if len(self.routes) != len(self._indexed):  # routes added after construction
            self._index()
        key = (scope["type"], scope.get("method"), scope.get("root_path", ""), scope["path"])
        found = self._matches.get(key)
        if found is not None:
            position, added, params = found
            return self._indexed[position], self._addition_list[added], params
        partial: tuple[BaseRoute, Scope] | None = None
        matched: tuple[BaseRoute, Scope] | None = None
        for route in self.candidates(scope):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                matched = (route, child_scope)
                break
            if match is Match.PARTIAL and partial is None:
                partial = (route, child_scope)
        matched = matched or partial
        if matched is None:  # misses are not kept: made-up paths must not fill memory
            return None
        route, child_scope = matched
        params = child_scope.get("path_params")
        items = None if params is None else tuple(params.items())
        additions = tuple((k, v) for k, v in child_scope.items() if k != "path_params")
        if len(self._matches) >= MAX_MATCHES:
            self._matches.clear()
            self._additions.clear()
            self._addition_list.clear()
        try:
            known = self._additions.get(additions)
        except TypeError:  # (a value that cannot be a key: the path is not remembered)
            return route, additions, items
        if known is None:
            known = self._additions[additions] = len(self._addition_list)
            self._addition_list.append(additions)
        self._matches[key] = (self._indexed.index(route), known, items)
        return route, additions, items

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().app(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self
        found = self._matched(scope)
        if found is not None:  # a full match, or a path served with another method: 405
            route, additions, params = found
            scope["route"] = route
            scope.update(additions)
            if params is not None:  # each request gets its own, to do with as it likes
                scope["path_params"] = dict(params)
            await route.handle(scope, receive, send)
            return
        route_path = get_route_path(scope)
        if scope["type"] == "http" and self.redirect_slashes and route_path != "/":
            redirect_scope = dict(scope)
            if route_path.endswith("/"):
                redirect_scope["path"] = redirect_scope["path"].rstrip("/")
            else:
                redirect_scope["path"] = redirect_scope["path"] + "/"
            for route in self.candidates(redirect_scope):
                match, _ = route.matches(redirect_scope)
                if match is not Match.NONE:
                    response = RedirectResponse(url=str(URL(scope=redirect_scope)))
                    await response(scope, receive, send)
                    return
        await self.default(scope, receive, send)
