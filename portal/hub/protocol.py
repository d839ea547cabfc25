"""What a hub is: the protocol both hubs implement, and the names and limits they share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from portal.hub.subscriptions import Subscription

RESUMED = "hub.resumed"
QUEUE_SIZE = 1000
PRESENCE_STATUSES = ("online", "away")


class Hub(Protocol):
    """What the messenger and the event relay need from a hub; one per process."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    def subscription(self, queue_size: int | None = None) -> Subscription: ...
    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None: ...
    async def clear_presence(self, tenant_id: int, agent_id: int) -> None: ...
    async def presence(self, tenant_id: int) -> dict[int, str]: ...


def check_presence(status: str, ttl: float) -> None:
    """Refuse a presence status or lifetime that no hub stores (ValueError)."""
    if status not in PRESENCE_STATUSES:
        raise ValueError(f"presence status must be one of {PRESENCE_STATUSES}, not {status!r}")
    if ttl <= 0:
        raise ValueError("presence ttl must be positive")
