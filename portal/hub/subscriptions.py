"""Subscriptions and the fan-out to them by channel, in this process; both hubs build on it."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from portal.hub.protocol import QUEUE_SIZE, RESUMED, encode


class Frame(dict[str, Any]):
    """A published message as subscribers get it: the dict, and `text`, its JSON as published.

    A websocket sends `text` as it is, so a frame fanned out to many sockets is encoded once,
    not once per socket.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(json.loads(text))
        self.text = text

    @classmethod
    def of(cls, message: dict[str, Any]) -> Frame:
        """`message` as a frame, encoded once here; a hub publishes it as it is, decoding nothing.

        Only for messages already shaped as JSON decodes them (string keys, lists rather than
        tuples), as the messenger's frames are: subscribers must read what they would have
        read had it come through Redis."""
        frame = cls.__new__(cls)
        dict.update(frame, message)
        frame.text = encode(message)
        return frame


class Subscription:
    """One websocket's messages: an async context manager and an async iterator of dicts.

    Messages are shared between the subscriptions of a channel: treat them as read-only.
    Published ones are `Frame`s, which carry their JSON text too.
    {"type": "hub.resumed"} means messages may have been lost (Redis reconnected, or this
    subscription fell `limit` messages behind): catch up from the core.
    """

    # 10,000 idle sockets per process: no task per subscription, and no __dict__.
    __slots__ = ("_hub", "_channels", "_queue", "_limit", "_waiter", "_closed")

    def __init__(self, hub: LocalHub, limit: int) -> None:
        self._hub = hub
        self._channels: set[str] = set()
        self._queue: deque[dict[str, Any]] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def channels(self) -> frozenset[str]:
        """The channels this subscription receives."""
        return frozenset(self._channels)

    async def add(self, channel: str) -> None:
        """Receive `channel`; once this returns (and Redis is up) no later publish is missed."""
        await self._hub._add(self, channel)

    async def remove(self, channel: str) -> None:
        """Stop receiving `channel`."""
        await self._hub._remove(self, channel)

    async def close(self) -> None:
        """Leave every channel and end the iteration."""
        await self._hub._discard(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def _deliver(self, message: dict[str, Any]) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._limit:
            # A slow reader: what is queued is worth less than bounded memory; the socket
            # catches up from the core instead.
            self._resume()
            return
        self._queue.append(message)
        self._wake()

    def _resume(self) -> None:
        # Catching up from the core covers whatever was still queued.
        self._queue.clear()
        self._queue.append({"type": RESUMED})
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class LocalHub:
    """Fan-out to the subscriptions of this process, by channel."""

    def __init__(self, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._channels: dict[str, set[Subscription]] = {}
        self._subscriptions: set[Subscription] = set()

    def subscription(self, queue_size: int | None = None) -> Subscription:
        """A new subscription (one per websocket); close it, or use it as a context manager.

        `queue_size` overrides the hub's for sockets that follow many channels (agents)."""
        subscription = Subscription(self, queue_size or self._queue_size)
        self._subscriptions.add(subscription)
        return subscription

    async def _add(self, subscription: Subscription, channel: str) -> None:
        if subscription._closed:
            raise RuntimeError("the subscription is closed")
        if channel in subscription._channels:
            return
        subscription._channels.add(channel)
        subscribers = self._channels.get(channel)
        first = subscribers is None
        if subscribers is None:
            subscribers = self._channels[channel] = set()
        subscribers.add(subscription)
        await self._subscribe(channel, first)

    async def _remove(self, subscription: Subscription, channel: str) -> None:
        if channel not in subscription._channels:
            return
        subscription._channels.discard(channel)
        if self._leave(subscription, channel):
            await self._unsubscribe([channel])

    async def _discard(self, subscription: Subscription) -> None:
        # Local state first, so a cancellation during the UNSUBSCRIBE leaves nothing behind.
        subscription._closed = True
        subscription._queue.clear()
        subscription._wake()
        self._subscriptions.discard(subscription)
        emptied = [c for c in subscription._channels if self._leave(subscription, c)]
        subscription._channels.clear()
        if emptied:
            await self._unsubscribe(emptied)

    def _leave(self, subscription: Subscription, channel: str) -> bool:
        """Drop `subscription` from `channel`; True when that was the channel's last one."""
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return False
        subscribers.discard(subscription)
        if subscribers:
            return False
        del self._channels[channel]
        return True

    def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        for subscription in self._channels.get(channel, ()):
            subscription._deliver(message)

    def _resume_all(self) -> None:
        for subscription in self._subscriptions:
            subscription._resume()

    async def _close_subscriptions(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()

    async def _subscribe(self, channel: str, first: bool) -> None:
        """Make sure messages of `channel` reach this process."""

    async def _unsubscribe(self, channels: list[str]) -> None:
        """Tell the source that nobody here listens to `channels` any more."""
