"""The apps' side of a core's `Capabilities`: routes of a feature the core lacks answer 404.

Pages hide what the core lacks where they draw it (the widget's apps, the rating form, file
inputs); this module makes the routes behind them agree, so that a link kept from before, or
typed by hand, finds nothing instead of a half-working page. The table names routes by their
`name`, which the templates' `url_for` already keeps stable.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from portal.core.contract import Capabilities
from portal.services import services

# The routes of each optional feature, by route name.
FEATURE_ROUTES: dict[str, frozenset[str]] = {
    "chat": frozenset(
        {
            "messenger",
            "messenger_token",
            "messenger_upload",
            "messenger_attachment",
            "messenger_ws",
            "agent_chats",
            "agent_ws",
            "admin_chat",
            "admin_canned_add",
            "admin_canned_delete",
        }
    ),
    "attachments": frozenset(
        {"messenger_upload", "messenger_attachment", "customer_attachment", "agent_attachment"}
    ),
    "ratings": frozenset({"customer_rate_ticket", "customer_rate_link"}),
}


def has(connection: HTTPConnection, feature: str) -> bool:
    """Whether the core serving this request has `feature` (a `Capabilities` field)."""
    capabilities: Capabilities = services(connection).core.capabilities
    return bool(getattr(capabilities, feature))


class Gate:
    """A route's app behind a check of the request's core: 404 while it lacks a feature."""

    def __init__(self, app: ASGIApp, features: tuple[str, ...]) -> None:
        self.app = app
        self.features = features

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if all(has(HTTPConnection(scope), feature) for feature in self.features):
            await self.app(scope, receive, send)
        else:
            await refuse(scope, receive, send)


async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer as if the route did not exist: the app's 404 page, or a refused handshake."""
    if scope["type"] != "websocket":
        raise HTTPException(404)  # the app's own 404 page
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse("Not Found", 404))
    else:  # the server cannot answer a handshake with a page: refuse it
        await websocket.close(code=1008)


def wrapped_by(app: ASGIApp, kind: type) -> bool:
    """Whether `app` is, or wraps (through `.app`), an instance of `kind`."""
    while not isinstance(app, kind):
        inner = getattr(app, "app", None)
        if inner is None or inner is app:
            return False
        app = inner
    return True


def gate_routes(routes: Iterable[BaseRoute]) -> None:
    """Make every route of `FEATURE_ROUTES` (in mounts too) answer 404 while its feature is off."""
    for route in routes:
        if isinstance(route, Mount):
            gate_routes(route.routes)
        elif isinstance(route, Route | WebSocketRoute):
            features = tuple(f for f, names in FEATURE_ROUTES.items() if route.name in names)
            # Route objects are module-level, shared by every app made in this process: gate
            # each once (the gate asks the core of the request it serves, whichever app's).
            if features and not wrapped_by(route.app, Gate):
                route.app = Gate(route.app, features)
