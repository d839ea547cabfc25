"""Routes of this app (filled in by issue 3)."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
