"""Agents' presence as their consoles hear it: one `presence` frame per tenant per moment.

Every agent socket that opens, closes or changes status changes its tenant's presence, and each
frame goes to every agent socket of the tenant: announced one by one, a hundred consoles
reconnecting after a deploy would send ten thousand frames at once and hold the event loop.
Here the changes of the next few milliseconds are gathered and each tenant's presence, read
once, goes out in one frame, so the consoles see the same final state with one frame each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from portal.hub import Hub

log = logging.getLogger(__name__)

GATHER_S = 0.02  # how long changes gather before the tenants' presence is announced
CLOSE_WAIT_S = 1.0  # how long a stopping app waits for the last announcements


class PresenceAnnouncements:
    """Announces each changed tenant's presence on its presence channel, in batches."""

    def __init__(
        self, hub: Hub, channel_of: Callable[[int], str], gather_s: float = GATHER_S
    ) -> None:
        self.hub = hub
        self.channel_of = channel_of
        self.gather_s = gather_s
        self._changed: dict[int, None] = {}  # tenants, in the order they changed
        self._announcer: asyncio.Task[None] | None = None

    def changed(self, tenant_id: int) -> None:
        """The tenant's presence changed (set or cleared in the hub): announce it soon."""
        self._changed[tenant_id] = None
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.create_task(self._announce_soon(), name="presence")

    async def close(self) -> None:
        """Give the pending announcements a moment (the app is stopping)."""
        if self._announcer is not None and not self._announcer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._announcer, CLOSE_WAIT_S)

    async def _announce_soon(self) -> None:
        await asyncio.sleep(self.gather_s)
        while self._changed:
            tenant_id = next(iter(self._changed))
            del self._changed[tenant_id]
            try:
                agents = await self.hub.presence(tenant_id)
                frame = {"type": "presence", "agents": {str(k): v for k, v in agents.items()}}
                await self.hub.publish(self.channel_of(tenant_id), frame)
            except Exception:  # one tenant's failure must not keep the others unannounced
                log.exception("announcing presence failed")
            await asyncio.sleep(0)  # tenant by tenant: let the sockets have their turns
