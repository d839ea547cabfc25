"""Core events from every process: this process's own, and the other processes' by the hub.

The embedded core tells only its own process that an agent replied or an article changed. With
several processes, a customer's live ticket page, the knowledge base's page cache and the search
index of process A must also hear of a write made through process B. `EventFeed` relays each
process's core events to the hub and hands every subscriber the events of all processes.

After a hub outage, events sent meanwhile are lost to the other processes; subscribers then get
`Event(EVENTS_RESUMED, 0)` and look at the core again (drop caches, catch up).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Collection
from typing import Any

from portal.core.bus import EventBus
from portal.core.contract import EVENTS_RESUMED, Event, HelpdeskCore
from portal.hub import RESUMED, Hub

log = logging.getLogger(__name__)

CHANNEL = "core-events"


class EventFeed:
    """One per process: `events()` yields the core events of every process."""

    def __init__(self, core: HelpdeskCore, hub: Hub) -> None:
        self.core = core
        self.hub = hub
        self.origin = secrets.token_hex(8)  # to skip our own events when they come back
        self._bus = EventBus()

    def events(self, types: Collection[str] | None = None) -> AsyncIterator[Event]:
        """The events of every process, or only those of `types` (and EVENTS_RESUMED)."""
        return self._bus.subscribe(types)

    async def run(self) -> None:
        """Relay this process's events out and the others' in, until cancelled."""
        if not self.hub.spans_processes:  # one process: nobody else to tell or to hear
            async for event in self.core.events():
                self._bus.publish(event)
            return
        async with self.hub.subscription() as sub:
            await sub.add(CHANNEL)
            inbound = asyncio.create_task(self._receive(sub))
            try:
                async for event in self.core.events():
                    self._bus.publish(event)
                    await self.hub.publish(CHANNEL, self._frame(event))
            finally:
                inbound.cancel()
                await asyncio.gather(inbound, return_exceptions=True)

    def _frame(self, event: Event) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "type": event.type,
            "tenant_id": event.tenant_id,
            "data": event.data,
        }

    async def _receive(self, sub: Any) -> None:
        async for frame in sub:
            if frame.get("type") == RESUMED:
                self._bus.publish(Event(EVENTS_RESUMED, 0))
            elif frame.get("origin") != self.origin:
                self._bus.publish(Event(frame["type"], frame["tenant_id"], frame.get("data") or {}))
