"""The process-wide pub/sub hub: carries notifications between processes (in memory, or Redis).

The messenger fans chat frames out through it, and the event relay (`portal.events`) passes the
core's events to every process by it, for cache and search invalidation.
"""

from __future__ import annotations

from portal.hub.memory import MemoryHub
from portal.hub.protocol import PRESENCE_STATUSES, QUEUE_SIZE, RESUMED, Hub, encode
from portal.hub.redis import RedisHub
from portal.hub.subscriptions import Frame, Subscription

__all__ = [
    "PRESENCE_STATUSES",
    "QUEUE_SIZE",
    "RESUMED",
    "Frame",
    "Hub",
    "MemoryHub",
    "RedisHub",
    "Subscription",
    "encode",
    "make_hub",
]


def make_hub(redis_url: str) -> Hub:
    """A MemoryHub for an empty URL (one process), else a RedisHub."""
    return RedisHub(redis_url) if redis_url else MemoryHub()
