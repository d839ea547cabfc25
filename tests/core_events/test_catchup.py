"""Catch-up from the feed: events written while the edge was not running reach it on start,
exactly once, also when webhooks bring the same events; a gap seen in a webhook is filled from
the feed first, in order; a cursor the core no longer keeps makes the edge resync."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from portal.core.contract import EVENTS_RESUMED, Event
from portal.core.embedded.rows import utcnow
from portal.core.webhooks.endpoints import new_secret
from portal.edge.catchup import FeedReader
from portal.edge.core_events import CoreEvents
from portal.edge.db import EdgeDatabase
from tests.core_events.conftest import MARKER, CoreSide, marker_event, until

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = new_secret()


@asynccontextmanager
async def edge_running(core_side: CoreSide, db_path: Path) -> AsyncIterator[Edge]:
    """An edge process's CoreEvents on its database file, reading the real core's feed."""
    core_events = CoreEvents(
        EdgeDatabase(f"sqlite+aiosqlite:///{db_path}"),
        webhook_secret=SECRET,
        feed=FeedReader(core_side.url, core_side.key),
    )
    await core_events.start()
    edge = Edge(core_events)
    collecting = asyncio.create_task(edge.collect())
    running = asyncio.create_task(core_events.run())
    try:
        await until(core_events.caught_up.is_set, "the catch-up at start")
        yield edge
    finally:
        for task in (running, collecting):
            task.cancel()
        await asyncio.gather(running, collecting, return_exceptions=True)
        await core_events.close()


class Edge:
    def __init__(self, core_events: CoreEvents) -> None:
        self.core_events = core_events
        self.taken_in: list[Event] = []

    async def collect(self) -> None:
        async for event in self.core_events.events():
            self.taken_in.append(event)

    async def settled(self) -> list[Event]:
        """What was taken in, once all handed on so far is collected: a marker event goes
        through the same stream, after everything before it."""
        marker = marker_event()
        assert await self.webhook(marker) == "accepted"
        await until(lambda: any(e.type == MARKER for e in self.taken_in), "the marker")
        self.taken_in = [e for e in self.taken_in if e.type != MARKER]
        return self.taken_in

    async def webhook(self, event: dict[str, Any]) -> str:
        body = json.dumps(event).encode()
        now = datetime.now(UTC)
        headers = {
            "webhook-id": event["id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(event["id"], now, body.decode()),
        }
        return await self.core_events.receive(body, headers)


def replies_of(events: list[Event]) -> list[int]:
    return [e.data["reply_id"] for e in events if e.type == "ticket.replied"]


async def test_events_written_while_the_edge_was_down_reach_it_on_start_exactly_once(
    core_side: CoreSide, tmp_path: Path
):
    db_path = tmp_path / "edge.db"
    async with edge_running(core_side, db_path) as first_run:
        # A first start stores where the feed is: nothing older is handed on.
        assert await first_run.settled() == []

    ticket = await core_side.ticket(subject="While the edge was down")
    replies = [await core_side.reply(ticket, f"reply {n}") for n in range(3)]
    written = await core_side.journaled(str(await first_run.core_events.db.cursor()), 4)

    async with edge_running(core_side, db_path) as edge:
        assert replies_of(await edge.settled()) == replies
        assert [e.type for e in edge.taken_in] == [e["type"] for e in written]
        # The sender's late deliveries of the same events change nothing.
        outcomes = {await edge.webhook(event) for event in written}
        assert outcomes == {"duplicate"}
        assert len(await edge.settled()) == len(written)

    async with edge_running(core_side, db_path) as again:
        assert await again.settled() == []  # nothing twice after another restart


async def test_a_webhook_after_a_gap_brings_the_missed_events_first(
    core_side: CoreSide, tmp_path: Path
):
    async with edge_running(core_side, tmp_path / "edge.db") as edge:
        start = str(await edge.core_events.db.cursor())
        ticket = await core_side.ticket(subject="Gap")
        replies = [await core_side.reply(ticket, f"reply {n}") for n in range(2)]
        written = await core_side.journaled(start, 3)
        last = written[-1]
        assert last["previous"] != start  # this webhook is not the next event: a gap

        assert await edge.webhook(last) == "accepted"

        assert [e.type for e in await edge.settled()] == [e["type"] for e in written]
        assert replies_of(edge.taken_in) == replies
        assert await edge.core_events.db.cursor() >= int(last["cursor"])
        assert {await edge.webhook(event) for event in written} == {"duplicate"}
        assert len(await edge.settled()) == len(written)


async def test_a_cursor_the_core_no_longer_keeps_makes_the_edge_resync(
    core_side: CoreSide, tmp_path: Path
):
    db_path = tmp_path / "edge.db"
    async with edge_running(core_side, db_path) as first_run:
        stored = await first_run.core_events.db.cursor()
    ticket = await core_side.ticket(subject="Purged before the edge came back")
    await core_side.journaled(str(stored), 1)
    assert await core_side.events_out.journal.purge(utcnow() + timedelta(days=8)) > 0

    async with edge_running(core_side, db_path) as edge:
        # Told to drop what it derived from events, and to read on from where the feed is.
        assert [e.type for e in await edge.settled()] == [EVENTS_RESUMED]
        assert await edge.core_events.db.cursor() == int(await core_side.newest())
        reply = await core_side.reply(ticket, "after the resync")
        await until(edge.core_events.catch_up, "a catch-up")
        assert replies_of(await edge.settled()) == [reply]
