"""What a hub is: the protocol both hubs implement, and the names and limits they share."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from portal.hub.subscriptions import Subscription

RESUMED = "hub.resumed"
QUEUE_SIZE = 1000
PRESENCE_STATUSES = ("online", "away")


class Hub(Protocol):
    """What the messenger and the event relay need from a hub; one per process."""

    # Whether other processes hear this one's publishes (Redis) or none do (memory).
    spans_processes: bool

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send `message` to every subscription of `channel` in every process; a `Frame`
        (`Frame.of`) goes as it was encoded."""
        ...

    def heard(self, channel: str) -> bool:
        """Whether a publish on `channel` may reach anyone: if not, the message need not even
        be built."""
        ...

    def subscription(self, queue_size: int | None = None) -> Subscription: ...
    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None: ...
    async def clear_presence(self, tenant_id: int, agent_id: int) -> None: ...
    async def presence(self, tenant_id: int) -> dict[int, str]: ...


# Made once: `json.dumps` with options builds an encoder on every call (every chat frame).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def encode(message: dict[str, Any]) -> str:
    """A message as the hub carries it and sockets send it: compact JSON, UTF-8 as is.

    Text that cannot be UTF-8 (a lone surrogate from a client's `\\ud800`) is escaped instead,
    so that neither Redis nor a websocket refuses it later.
    """
    text = _COMPACT.encode(message)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _COMPACT_ASCII.encode(message)
    return text


def check_presence(status: str, ttl: float) -> None:
    """Refuse a presence status or lifetime that no hub stores (ValueError)."""
    if status not in PRESENCE_STATUSES:
        raise ValueError(f"presence status must be one of {PRESENCE_STATUSES}, not {status!r}")
    if ttl <= 0:
        raise ValueError("presence ttl must be positive")
