"""Waiting on a condition in tests: poll it with a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

DEADLINE_S = 10.0


async def until(
    check: Callable[[], Any | Awaitable[Any]], what: str, timeout: float = DEADLINE_S
) -> Any:
    """Poll `check` (plain or async) until it gives something truthy, and return that; fail
    naming `what` at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
