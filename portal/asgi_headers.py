"""A request's header read straight from the ASGI scope.

Every request crosses several middlewares and a handler that each want one header (the host,
Accept-Encoding, Accept-Language, the cookie): Starlette's `Request.headers` makes a header
object per request object, which costs more than finding one name in the raw list.
"""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first `name` header as sent (`name` lower case, as ASGI gives names), else None."""
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None
