"""The hub of many processes: Redis pub/sub between them, presence in Redis hashes."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from portal.hub.protocol import QUEUE_SIZE, check_presence, encode
from portal.hub.subscriptions import Frame, LocalHub

log = logging.getLogger(__name__)

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


class RedisHub(LocalHub):
    """The hub of many processes: one pub/sub connection per process, local fan-out.

    A reader task owns the pub/sub connection. It SUBSCRIBEs on the first local subscriber of
    a channel and UNSUBSCRIBEs after the last leaves; when the connection is lost it reconnects
    with backoff, forever, resubscribes, then sends hub.resumed to every subscription.
    """

    spans_processes = True

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
        text = message.text if isinstance(message, Frame) else encode(message)
        await self._quietly(self._redis.publish(channel, text))

    def heard(self, channel: str) -> bool:
        """Whether anyone may get a publish on `channel`: always (other processes may listen)."""
        return True

    async def set_presence(
        self, tenant_id: int, agent_id: int, status: str, ttl: float = 60
    ) -> None:
        """Mark an agent `status` for `ttl` seconds, seen by every process."""
        check_presence(status, ttl)
        now = time.time()
        args: list[str | int] = [
            agent_id,
            f"{status}:{now + ttl:.3f}",
            f"{now:.3f}",
            math.ceil(ttl * 1000),
        ]
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
                    message = Frame(response[2].decode())
                except (ValueError, TypeError):
                    log.warning("hub: ignoring a message that is no JSON object on %s", channel)
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
