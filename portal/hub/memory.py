"""The hub of a single process: publish hands messages to this process's subscriptions."""

from __future__ import annotations

import time
from typing import Any

from portal.hub.protocol import QUEUE_SIZE, check_presence, encode
from portal.hub.subscriptions import Frame, LocalHub


class MemoryHub(LocalHub):
    """The hub of a single process: publish delivers to local subscriptions directly."""

    spans_processes = False

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        super().__init__(queue_size)
        self._presence: dict[int, dict[int, tuple[str, float]]] = {}

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """End every subscription."""
        await self._close_subscriptions()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Deliver `message` to this process's subscriptions of `channel`."""
        if isinstance(message, Frame):  # encoded already, and shaped as its JSON
            if channel in self._channels:
                self._dispatch(channel, message)
            return
        # A JSON round trip, as through Redis, so a single process finds unserialisable
        # messages too and subscribers see the same shapes (lists, string keys).
        text = encode(message)
        if channel in self._channels:
            self._dispatch(channel, Frame(text))

    def heard(self, channel: str) -> bool:
        """Whether anyone would get a publish on `channel`: a subscription of this process."""
        return channel in self._channels

    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None:
        """Mark an agent `status` for `ttl` seconds."""
        check_presence(status, ttl)
        agents = self._presence.setdefault(tenant_id, {})
        agents[agent_id] = (status, time.monotonic() + ttl)

    async def clear_presence(self, tenant_id: int, agent_id: int) -> None:
        """Forget an agent's presence (signed out, socket closed)."""
        self._presence.get(tenant_id, {}).pop(agent_id, None)

    async def presence(self, tenant_id: int) -> dict[int, str]:
        """Agent id -> status of the agents whose presence has not expired."""
        agents = self._presence.get(tenant_id, {})
        now = time.monotonic()
        for agent_id in [a for a, (_, expires) in agents.items() if expires <= now]:
            del agents[agent_id]
        return {agent_id: status for agent_id, (status, _) in agents.items()}
