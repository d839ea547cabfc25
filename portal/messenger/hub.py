"""The hub: carries notifications between processes (in memory, or Redis pub/sub)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RESUMED = "hub.resumed"
QUEUE_SIZE = 1000
PRESENCE_STATUSES = ("online", "away")


class Hub(Protocol):
    """What the messenger needs from a hub; one per process."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...
    def subscription(self, queue_size: int | None = None) -> Subscription: ...
    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None: ...
    async def clear_presence(self, tenant_id: int, agent_id: int) -> None: ...
    async def presence(self, tenant_id: int) -> dict[int, str]: ...


def make_hub(redis_url: str) -> Hub:
    """A MemoryHub for an empty URL (one process), else a RedisHub."""
    return RedisHub(redis_url) if redis_url else MemoryHub()


class Subscription:
    """One websocket's messages: an async context manager and an async iterator of dicts.

    Messages are shared between the subscriptions of a channel: treat them as read-only.
    {"type": "hub.resumed"} means messages may have been lost (Redis reconnected, or this
    subscription fell `limit` messages behind): catch up from the core.
    """

    # 10,000 idle sockets per process: no task per subscription, and no __dict__.
    __slots__ = ("_hub", "_channels", "_queue", "_limit", "_waiter", "_closed")

    def __init__(self, hub: _LocalHub, limit: int) -> None:
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


class _LocalHub:
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


class MemoryHub(_LocalHub):
    """The hub of a single process: publish delivers to local subscriptions directly."""

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
        # A JSON round trip, as through Redis, so a single process finds unserialisable
        # messages too and subscribers see the same shapes (lists, string keys).
        data = json.dumps(message)
        if channel in self._channels:
            self._dispatch(channel, json.loads(data))

    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None:
        """Mark an agent `status` for `ttl` seconds."""
        _check_presence(status, ttl)
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


# Prune expired fields and set one, atomically (a read-then-HDEL from the client could delete
# another process's fresh entry); the hash itself lives as long as its longest entry.
_SET_PRESENCE = """
local entries = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[3])
for i = 1, #entries, 2 do
  local expires = tonumber(string.match(entries[i + 1], ':([^:]*)$'))
  if expires == nil or expires <= now then redis.call('HDEL', KEYS[1], entries[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
"""


class RedisHub(_LocalHub):
    """The hub of many processes: one pub/sub connection per process, local fan-out.

    A reader task owns the pub/sub connection. It SUBSCRIBEs on the first local subscriber of
    a channel and UNSUBSCRIBEs after the last leaves; when the connection is lost it reconnects
    with backoff, forever, resubscribes, then sends hub.resumed to every subscription.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        queue_size: int = QUEUE_SIZE,
        timeout: float = 0.5,
        max_backoff: float = 1.0,
        idle_ping: float = 30.0,
    ) -> None:
        super().__init__(queue_size)
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._idle_ping = idle_ping
        # One quick retry on a fresh connection (a pooled one may predate a Redis restart);
        # no backoff, since publish must not keep the caller waiting.
        self._redis = Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 1),
            # redis-py 5 retries nothing unless told which errors to retry
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            # Pub/sub messages are plain replies in RESP2 for every redis-py version (RESP3,
            # redis-py 8's default, turns them into push messages).
            protocol=2,
        )
        self._set_presence = self._redis.register_script(_SET_PRESENCE)
        self._conn: AbstractConnection | None = None  # the pub/sub connection while it is up
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._resubscribing: set[str] | None = None
        self._interrupted = False  # messages may have been missed since the last connection
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # so an outage logs once, not once per publish

    async def start(self) -> None:
        """Start the reader; wait a little for Redis, but serve (and retry) without it."""
        self._task = asyncio.create_task(self._run(), name="hub-reader")
        try:
            await asyncio.wait_for(self._ready.wait(), 2 * self._timeout)
        except TimeoutError:
            log.warning("Redis is not reachable yet; the hub keeps trying")

    async def close(self) -> None:
        """End every subscription, stop the reader and close the connections."""
        await self._close_subscriptions()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._redis.aclose()

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """PUBLISH `message` as JSON; on a Redis outage log and drop it (the core has the data)."""
        data = json.dumps(message, separators=(",", ":"))
        await self._quietly(self._redis.publish(channel, data))

    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None:
        """Mark an agent `status` for `ttl` seconds, seen by every process."""
        _check_presence(status, ttl)
        now = time.time()
        args = [agent_id, f"{status}:{now + ttl:.3f}", f"{now:.3f}", math.ceil(ttl * 1000)]
        await self._quietly(self._set_presence(keys=[_presence_key(tenant_id)], args=args))

    async def clear_presence(self, tenant_id: int, agent_id: int) -> None:
        """Forget an agent's presence (signed out, socket closed)."""
        await self._quietly(self._redis.hdel(_presence_key(tenant_id), str(agent_id)))

    async def presence(self, tenant_id: int) -> dict[int, str]:
        """Agent id -> status of the agents whose presence has not expired ({} without Redis)."""
        entries = await self._quietly(self._redis.hgetall(_presence_key(tenant_id)))
        now = time.time()
        result: dict[int, str] = {}
        for agent, value in (entries or {}).items():
            status, _, expires = value.decode().rpartition(":")
            try:
                if float(expires) > now:
                    result[int(agent)] = status
            except ValueError:
                continue
        return result

    async def _quietly(self, command: Awaitable[Any]) -> Any:
        """Await a Redis command for at most `timeout`; None (logged once) while Redis is down."""
        # The core has the data and presence is a hint: an outage must not break the caller.
        try:
            async with asyncio.timeout(self._timeout):
                result = await command
        except (RedisError, OSError, TimeoutError) as error:
            if not self._failing:
                log.warning("hub: Redis unreachable, dropping publishes and presence: %r", error)
            self._failing = True
            return None
        if self._failing:
            log.info("hub: Redis commands work again")
        self._failing = False
        return result

    async def _subscribe(self, channel: str, first: bool) -> None:
        conn = self._conn
        if conn is None:
            return  # the reader subscribes on reconnect and then sends hub.resumed
        pending = self._confirmations.get(channel)
        if first:
            confirmed = asyncio.get_running_loop().create_future()
            self._confirmations.setdefault(channel, deque()).append(confirmed)
            await self._send(conn, "SUBSCRIBE", channel)
        elif pending:
            confirmed = pending[-1]  # another subscriber's SUBSCRIBE is still on its way
        else:
            return
        # Without the confirmation a publish right after add() could be missed; with Redis
        # too slow to confirm, give up waiting (a lost connection sends hub.resumed anyway).
        await asyncio.wait([confirmed], timeout=self._timeout)

    async def _unsubscribe(self, channels: list[str]) -> None:
        conn = self._conn
        if conn is not None:
            await self._send(conn, "UNSUBSCRIBE", *channels)

    async def _send(self, conn: AbstractConnection, *args: str) -> None:
        # Checked in the same step as redis-py's own check, which would otherwise reconnect
        # this connection behind the reader's back.
        if conn is not self._conn or not conn.is_connected:
            return
        try:
            await conn.send_command(*args, check_health=False)
        except Exception as error:  # whatever it is, the reader sees the loss and recovers
            log.debug("hub: %s failed: %r", args[0], error)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            conn = self._redis.connection_pool.make_connection()
            try:
                await conn.connect()
                self._conn = conn
                backoff = 0.05
                channels = list(self._channels)
                if channels:
                    self._resubscribing = set(channels)
                    await conn.send_command("SUBSCRIBE", *channels, check_health=False)
                else:
                    self._connected()
                await self._read(conn)
            except (RedisError, OSError) as error:
                if self._ready.is_set() or not self._interrupted:
                    log.warning("hub: no pub/sub connection to Redis (%r); retrying", error)
                else:
                    log.debug("hub: Redis still unreachable: %r", error)
            except Exception:
                # The reader must outlive anything unexpected, or the process goes deaf.
                log.exception("hub: the reader failed; reconnecting")
            finally:
                self._conn = None
                self._resubscribing = None
                self._interrupted = True
                self._ready.clear()
                for waiters in self._confirmations.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                self._confirmations.clear()
                await conn.disconnect(nowait=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _read(self, conn: AbstractConnection) -> None:
        pinged = False
        while True:
            response = await conn.read_response(timeout=self._idle_ping, push_request=True)
            if response is None:
                # Idle: a dead peer without a TCP reset would otherwise go unnoticed.
                if pinged:
                    raise ConnectionError("no answer to PING")
                await conn.send_command("PING", check_health=False)
                pinged = True
                continue
            pinged = False
            if not isinstance(response, list) or len(response) < 2:
                continue  # a PONG
            kind, channel = response[0], response[1].decode()
            if kind == b"message":
                try:
                    message = json.loads(response[2])
                except ValueError:
                    log.warning("hub: ignoring a message that is not JSON on %s", channel)
                    continue
                self._dispatch(channel, message)
            elif kind == b"subscribe":
                self._confirmed(channel)

    def _confirmed(self, channel: str) -> None:
        waiters = self._confirmations.get(channel)
        if waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
            if not waiters:
                del self._confirmations[channel]
        if self._resubscribing is not None:
            self._resubscribing.discard(channel)
            if not self._resubscribing:
                self._resubscribing = None
                self._connected()

    def _connected(self) -> None:
        self._ready.set()
        if self._interrupted:
            log.info("hub: connected to Redis again")
            self._interrupted = False
            self._resume_all()


def _presence_key(tenant_id: int) -> str:
    return f"presence:{tenant_id}"


def _check_presence(status: str, ttl: float) -> None:
    if status not in PRESENCE_STATUSES:
        raise ValueError(f"presence status must be one of {PRESENCE_STATUSES}, not {status!r}")
    if ttl <= 0:
        raise ValueError("presence ttl must be positive")
