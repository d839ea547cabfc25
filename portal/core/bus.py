"""In-process fan-out of events: the embedded core's own, and the front's feed of every process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

from portal.core.contract import EVENTS_RESUMED, Event


class EventBus:
    """In-process fan-out of core events to every `events()` subscriber."""

    def __init__(self) -> None:
        self._queues: dict[asyncio.Queue[Event], Collection[str] | None] = {}

    def publish(self, event: Event) -> None:
        for queue, types in self._queues.items():
            if types is None or event.type in types or event.type == EVENTS_RESUMED:
                queue.put_nowait(event)

    async def subscribe(self, types: Collection[str] | None = None) -> AsyncIterator[Event]:
        """Every event, or only those of `types` (and EVENTS_RESUMED, which every subscriber
        must hear): a subscriber is not woken for events it would skip. On a ticket, five
        follow the feed and one of them cares."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[queue] = types
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.pop(queue, None)
