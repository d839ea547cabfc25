"""The hub, in memory and on a private redis-server that the tests stop and restart."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
from redis.asyncio import Redis

from portal.hub import RESUMED, Frame, MemoryHub, RedisHub, Subscription, make_hub
from tests.redis_server import RedisServer

HubFactory = Callable[..., Awaitable[MemoryHub | RedisHub]]


@asynccontextmanager
async def hubs_of(kind: Callable[..., MemoryHub | RedisHub]) -> AsyncIterator[HubFactory]:
    """Makes started hubs (each RedisHub stands for one process); closes them afterwards."""
    hubs: list[MemoryHub | RedisHub] = []

    async def make(**kwargs: Any) -> MemoryHub | RedisHub:
        hub = kind(**kwargs)
        await hub.start()
        hubs.append(hub)
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            await hub.close()


@pytest.fixture
async def redis_hub(redis: RedisServer) -> AsyncIterator[HubFactory]:
    async with hubs_of(partial(RedisHub, redis.url)) as make:
        yield make


@pytest.fixture(params=["memory", "redis"])
async def any_hub(request: pytest.FixtureRequest) -> AsyncIterator[HubFactory]:
    kind: Callable[..., MemoryHub | RedisHub] = MemoryHub
    if request.param == "redis":
        kind = partial(RedisHub, request.getfixturevalue("redis").url)
    async with hubs_of(kind) as make:
        yield make


@pytest.fixture
async def inspector(redis: RedisServer) -> AsyncIterator[Redis]:
    """A plain client for looking at the server's pub/sub state."""
    client = Redis.from_url(redis.url, decode_responses=True)
    yield client
    await client.aclose()


async def receive(subscription: Subscription, timeout: float = 3.0) -> dict[str, Any]:
    return await asyncio.wait_for(anext(subscription), timeout)


_markers = itertools.count(1)


async def nothing_before_a_marker(
    hub: MemoryHub | RedisHub, subscription: Subscription, channel: str
) -> bool:
    """Publish a marker on `channel` (which `subscription` follows): whether it is the next thing
    the subscription gets. A hub keeps the order of publishes, so anything else on its way to
    the subscription would come first."""
    marker = {"type": "marker", "n": next(_markers)}
    await hub.publish(channel, marker)
    return await receive(subscription) == marker


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the condition never became true"
        await asyncio.sleep(0.02)


class FakeTime:
    """The `time` module as the hubs' modules see it: presence expires when the test says."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    for kind in (MemoryHub, RedisHub):
        monkeypatch.setattr(sys.modules[kind.__module__], "time", fake)
    return fake


def test_make_hub_picks_the_kind() -> None:
    assert isinstance(make_hub(""), MemoryHub)
    assert isinstance(make_hub("redis://127.0.0.1:1/0"), RedisHub)


async def test_subscribers_get_their_channels_in_publish_order(any_hub: HubFactory) -> None:
    hub = await any_hub()
    async with hub.subscription() as visitor, hub.subscription() as agent:
        await visitor.add("conv:1:7")
        await agent.add("conv:1:7")
        await agent.add("inbox:1")
        for n in range(30):
            await hub.publish("conv:1:7", {"type": "message", "n": n, "tags": ("a",)})
            if n % 10 == 0:
                await hub.publish("inbox:1", {"type": "inbox", "n": n})
            await hub.publish("conv:1:8", {"type": "message", "n": n})  # nobody's

        seen = [await receive(visitor) for _ in range(30)]
        assert seen == [{"type": "message", "n": n, "tags": ["a"]} for n in range(30)]
        assert await nothing_before_a_marker(hub, visitor, "conv:1:7")

        both = [await receive(agent) for _ in range(33)]
        assert [m["n"] for m in both if m["type"] == "message"] == list(range(30))
        assert [m["n"] for m in both if m["type"] == "inbox"] == [0, 10, 20]
        assert both.index({"type": "inbox", "n": 10}) == 12  # right after message 10


async def test_a_message_arrives_with_its_json_text_to_send_on(any_hub: HubFactory) -> None:
    hub = await any_hub()
    async with hub.subscription() as one, hub.subscription() as other:
        for subscription in (one, other):
            await subscription.add("inbox:1")
        message = {"type": "inbox", "preview": "Grüße, 你好", "ids": (1, 2)}
        await hub.publish("inbox:1", message)
        first, second = await receive(one), await receive(other)
        assert first == second == {"type": "inbox", "preview": "Grüße, 你好", "ids": [1, 2]}
        # The one encoding every socket sends: compact, UTF-8 as it is.
        assert isinstance(first, Frame) and isinstance(second, Frame)
        assert first.text == second.text == '{"type":"inbox","preview":"Grüße, 你好","ids":[1,2]}'
        # Text that is no UTF-8 (a lone surrogate) goes escaped, so nothing refuses it later.
        await hub.publish("inbox:1", {"type": "page", "title": "a\ud800b"})
        odd = await receive(one)
        assert odd == {"type": "page", "title": "a\ud800b"}
        assert isinstance(odd, Frame) and odd.text == '{"type":"page","title":"a\\ud800b"}'


async def test_a_frame_encoded_by_its_publisher_arrives_as_one_decoded_would(
    any_hub: HubFactory,
) -> None:
    hub = await any_hub()
    message = {"type": "inbox", "conversation": {"id": 7, "preview": "Grüße", "files": [1, 2]}}
    async with hub.subscription() as one:
        await one.add("inbox:1")
        await hub.publish("inbox:1", message)
        await hub.publish("inbox:1", Frame.of(message))
        plain, encoded = await receive(one), await receive(one)
    assert isinstance(encoded, Frame)
    assert encoded == plain == message and encoded.text == plain.text  # type: ignore[attr-defined]


async def test_whether_a_channel_is_heard(any_hub: HubFactory) -> None:
    hub = await any_hub()
    async with hub.subscription() as one:
        await one.add("conv:1:7")
        assert hub.heard("conv:1:7")
        # In one process nobody else listens; through Redis another process may.
        assert hub.heard("conv:1:8") == isinstance(hub, RedisHub)
    assert hub.heard("conv:1:7") == isinstance(hub, RedisHub)


async def test_remove_and_close(any_hub: HubFactory) -> None:
    hub = await any_hub()
    subscription = hub.subscription()
    await subscription.add("conv:1:1")
    await subscription.add("conv:1:2")
    assert subscription.channels == {"conv:1:1", "conv:1:2"}
    await subscription.remove("conv:1:1")
    await hub.publish("conv:1:1", {"n": 1})
    await hub.publish("conv:1:2", {"n": 2})
    assert await receive(subscription) == {"n": 2}
    assert await nothing_before_a_marker(hub, subscription, "conv:1:2")

    waiting = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)  # one step of the task: it waits for a message now
    assert not waiting.done()
    await subscription.close()
    with pytest.raises(StopAsyncIteration):
        await waiting
    assert subscription.channels == frozenset()
    with pytest.raises(RuntimeError):
        await subscription.add("conv:1:3")


async def test_closing_the_hub_ends_every_subscription(any_hub: HubFactory) -> None:
    hub = await any_hub()
    subscription = hub.subscription()
    await subscription.add("inbox:1")
    await hub.close()
    assert [m async for m in subscription] == []


async def test_a_slow_reader_gets_resumed_instead_of_unbounded_memory(
    any_hub: HubFactory,
) -> None:
    hub = await any_hub(queue_size=5)
    async with hub.subscription() as slow, hub.subscription() as fast:
        await slow.add("conv:1:1")
        await fast.add("conv:1:1")
        for n in range(12):
            await hub.publish("conv:1:1", {"n": n})
            await receive(fast)  # so the hub has dispatched everything up to here to both
        # 0-4 fill the queue, 5 overflows it, 6-9 fill it again, 10 overflows, 11 follows.
        assert await receive(slow) == {"type": RESUMED}
        assert await receive(slow) == {"n": 11}
        assert await nothing_before_a_marker(hub, slow, "conv:1:1")


async def test_presence_expires_and_clears(any_hub: HubFactory, clock: FakeTime) -> None:
    hub = await any_hub()
    await hub.set_presence(1, 10, "online")
    await hub.set_presence(1, 11, "away", ttl=20)
    await hub.set_presence(2, 20, "online")
    assert await hub.presence(1) == {10: "online", 11: "away"}
    clock.advance(19.9)
    assert await hub.presence(1) == {10: "online", 11: "away"}
    clock.advance(0.2)
    assert await hub.presence(1) == {10: "online"}
    await hub.set_presence(1, 10, "away")
    assert await hub.presence(1) == {10: "away"}
    await hub.clear_presence(1, 10)
    await hub.clear_presence(1, 99)
    assert await hub.presence(1) == {}
    assert await hub.presence(2) == {20: "online"}
    with pytest.raises(ValueError):
        await hub.set_presence(1, 10, "busy")


async def test_two_processes_share_messages(redis_hub: HubFactory) -> None:
    web1, web2 = await redis_hub(), await redis_hub()
    async with web1.subscription() as agent, web2.subscription() as visitor:
        await agent.add("conv:1:5")
        await visitor.add("conv:1:5")
        # Straight after add(): the SUBSCRIBE is confirmed, so nothing is missed.
        for n in range(20):
            await (web1 if n % 2 else web2).publish("conv:1:5", {"n": n})
        assert [(await receive(agent))["n"] for _ in range(20)] == list(range(20))
        assert [(await receive(visitor))["n"] for _ in range(20)] == list(range(20))


async def test_presence_is_shared_between_processes(redis_hub: HubFactory, clock: FakeTime) -> None:
    web1, web2 = await redis_hub(), await redis_hub()
    await web1.set_presence(1, 10, "online", ttl=20)
    await web2.set_presence(1, 11, "away")
    assert await web2.presence(1) == {10: "online", 11: "away"}
    clock.advance(20.1)
    assert await web1.presence(1) == {11: "away"}
    await web1.clear_presence(1, 11)
    assert await web2.presence(1) == {}


async def test_one_pubsub_connection_and_unsubscribe_after_the_last(
    redis_hub: HubFactory, inspector: Redis
) -> None:
    hub = await redis_hub()
    subscriptions = [hub.subscription() for _ in range(200)]
    for n, subscription in enumerate(subscriptions):
        await subscription.add(f"conv:1:{n % 50}")
        await subscription.add("inbox:1")
    assert len(await inspector.client_list(_type="pubsub")) == 1
    assert len(await inspector.pubsub_channels()) == 51
    assert dict(await inspector.pubsub_numsub("inbox:1")) == {"inbox:1": 1}

    for subscription in subscriptions[:150]:
        await subscription.close()
    # A SUBSCRIBE after those closes, on the same connection: once Redis has done it, it has
    # done whatever the closes sent before it.
    async with hub.subscription() as marker:
        await marker.add("marker:1")

        async def marker_subscribed() -> bool:
            return "marker:1" in await inspector.pubsub_channels()

        await eventually(marker_subscribed)
        # Every channel still has a subscriber (150-199 cover all 50 conversations).
        assert len(await inspector.pubsub_channels()) == 51 + 1

    for subscription in subscriptions[150:]:
        await subscription.remove("inbox:1")
    for subscription in subscriptions[150:175]:
        await subscription.close()

    async def conversations_25_to_49_left() -> bool:
        return sorted(await inspector.pubsub_channels()) == sorted(
            f"conv:1:{n}" for n in range(25, 50)
        )

    await eventually(conversations_25_to_49_left)


async def test_redis_restart_resumes_every_subscription(
    redis: RedisServer, redis_hub: HubFactory
) -> None:
    web1, web2 = await redis_hub(), await redis_hub()
    async with web1.subscription() as agent, web1.subscription() as idle:
        await agent.add("conv:1:1")
        await web2.publish("conv:1:1", {"n": 1})
        assert await receive(agent) == {"n": 1}

        redis.restart()

        assert await receive(agent) == {"type": RESUMED}
        assert await receive(idle) == {"type": RESUMED}
        await web2.publish("conv:1:1", {"n": 2})
        await web1.publish("conv:1:1", {"n": 3})
        assert await receive(agent) == {"n": 2}
        assert await receive(agent) == {"n": 3}
        await idle.add("conv:1:9")
        assert await nothing_before_a_marker(web2, idle, "conv:1:9")


async def test_publish_during_an_outage_neither_raises_nor_hangs(
    redis: RedisServer, redis_hub: HubFactory
) -> None:
    # A command timeout far longer than the guard below: waiting any of them out would fail
    # the test; a server that is gone refuses at once.
    hub = await redis_hub(timeout=60)
    async with hub.subscription() as subscription:
        await subscription.add("conv:1:1")
        redis.stop()

        async with asyncio.timeout(20):
            for n in range(5):
                await hub.publish("conv:1:1", {"n": n})
            await hub.set_presence(1, 10, "online")
            assert await hub.presence(1) == {}
        await subscription.add("conv:1:2")  # recorded now, subscribed on reconnect

        redis.start()
        assert await receive(subscription) == {"type": RESUMED}
        await hub.publish("conv:1:2", {"n": 5})
        assert await receive(subscription) == {"n": 5}


async def test_publish_to_a_hanging_redis_gives_up_after_the_timeout(
    redis: RedisServer, redis_hub: HubFactory
) -> None:
    hub = await redis_hub(timeout=0.2)
    redis.freeze()
    try:
        # A frozen Redis never answers. The guard is 25 times the hub's timeout, not a measure
        # of it: without that timeout, redis-py's own defaults give up only after about 10 s.
        async with asyncio.timeout(5):
            await hub.publish("conv:1:1", {"n": 1})
    finally:
        redis.thaw()
    async with hub.subscription() as subscription:
        await subscription.add("conv:1:1")
        await hub.publish("conv:1:1", {"n": 2})
        assert await receive(subscription) == {"n": 2}


async def test_a_hub_started_without_redis_connects_later(
    redis: RedisServer, redis_hub: HubFactory
) -> None:
    redis.stop()
    hub = await redis_hub(timeout=0.1)
    async with hub.subscription() as subscription:
        await subscription.add("inbox:1")
        redis.start()
        assert await receive(subscription) == {"type": RESUMED}
        await hub.publish("inbox:1", {"n": 1})
        assert await receive(subscription) == {"n": 1}
