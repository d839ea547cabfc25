"""The event feed: core events of every process, and a word when some may have gone unheard."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from portal.core.bus import EventBus
from portal.core.contract import EVENTS_RESUMED, ArticleDraft, Event
from portal.core.embedded.core import EmbeddedCore
from portal.events import CHANNEL, EventFeed
from portal.hub import RedisHub


async def _next(events, timeout: float = 10.0):
    return await asyncio.wait_for(anext(events), timeout)


async def _relays_listening(redis_url: str, hub: RedisHub, *heard) -> None:
    """Wait until both relays listen to the hub (and so to their cores, which they subscribe to
    first): both subscribed on the server, then a probe that each feed hands on."""
    probes = [asyncio.create_task(_next(events)) for events in heard]
    inspector = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with asyncio.timeout(10):
            while dict(await inspector.pubsub_numsub(CHANNEL)) != {CHANNEL: 2}:
                await asyncio.sleep(0.01)
    finally:
        await inspector.aclose()
    await hub.publish(CHANNEL, {"origin": "test", "type": "probe", "tenant_id": 0})
    assert [(await probe).type for probe in probes] == ["probe", "probe"]


async def test_events_of_one_process_reach_the_other_once_and_an_outage_is_announced(
    tmp_path, redis
):
    core_a = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/a.db")
    core_b = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/b.db")
    hub_a, hub_b = RedisHub(redis.url), RedisHub(redis.url)
    for part in (core_a, core_b, hub_a, hub_b):
        await part.start()
    tenant = await core_b.tenants.create_tenant("acme", "Acme")  # before anyone listens
    feed_a, feed_b = EventFeed(core_a, hub_a), EventFeed(core_b, hub_b)
    relays = [asyncio.create_task(feed_a.run()), asyncio.create_task(feed_b.run())]
    heard_by_a, heard_by_b = feed_a.events(), feed_b.events()
    try:
        await _relays_listening(redis.url, hub_a, heard_by_a, heard_by_b)
        first_a, first_b = (
            asyncio.create_task(_next(heard_by_a)),
            asyncio.create_task(_next(heard_by_b)),
        )
        await core_b.kb.save_article(tenant.id, ArticleDraft("en", "hi", "Hi", "Hello"))
        assert (await first_b).type == "article.changed"  # its own, once
        assert (await first_a).type == "article.changed"  # and the other process's
        assert (await first_a).tenant_id == tenant.id

        redis.restart()
        assert (await _next(heard_by_a)).type == EVENTS_RESUMED
        # B's next event is the outage too: its own article event did not come back twice.
        assert (await _next(heard_by_b)).type == EVENTS_RESUMED
    finally:
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await heard_by_a.aclose()
        await heard_by_b.aclose()
        for part in (hub_a, hub_b, core_a, core_b):
            await part.close()


async def test_a_subscriber_of_some_types_is_handed_only_those_and_resumed():
    bus = EventBus()
    some, every = bus.subscribe({"article.changed"}), bus.subscribe()
    first_some, first_every = (
        asyncio.ensure_future(anext(some)),
        asyncio.ensure_future(anext(every)),
    )
    await asyncio.sleep(0)  # both subscriptions start
    for kind in ("ticket.created", "article.changed", EVENTS_RESUMED):
        bus.publish(Event(kind, 1))
    assert [(await first_some).type, (await anext(some)).type] == [
        "article.changed",
        EVENTS_RESUMED,
    ]
    assert [(await first_every).type, (await anext(every)).type, (await anext(every)).type] == [
        "ticket.created",
        "article.changed",
        EVENTS_RESUMED,
    ]
    await some.aclose()
    await every.aclose()
