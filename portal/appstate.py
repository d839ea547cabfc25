"""Objects one app keeps for all its requests (limit counters, small caches), made on first use.

They live on `app.state`, not in module globals, so two apps in one process (tests,
benchmarks) never share counts or cached values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

T = TypeVar("T")


def shared(connection: HTTPConnection, name: str, factory: Callable[[], T]) -> T:
    """The app's object called `name` (a request's or a websocket's app), made by `factory`."""
    state: Any = connection.app.state
    found: T | None = getattr(state, name, None)
    if found is None:
        found = factory()
        setattr(state, name, found)
    return found
