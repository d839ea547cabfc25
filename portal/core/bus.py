"""In-process fan-out of events: the embedded core's own, and the front's feed of every process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from portal.core.contract import Event


class EventBus:
    """In-process fan-out of core events to every `events()` subscriber."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)
