"""The events feed, `GET /core/v1/events`: a real `portal core` under uvicorn, its journal fed
by writes on its core."""

from __future__ import annotations

from datetime import timedelta

import pytest

from portal.core.embedded.rows import utcnow
from tests.core_events.conftest import CoreSide

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_the_events_of_writes_come_in_order_with_growing_cursors(core_side: CoreSide):
    start = await core_side.newest()
    ticket = await core_side.ticket(subject="Printer on fire")
    first = await core_side.reply(ticket, "still burning")
    second = await core_side.reply(ticket, "out now")

    events = await core_side.journaled(start, 3)

    replied = [e for e in events if e["type"] == "ticket.replied"]
    assert [e["data"]["reply_id"] for e in replied] == [first, second]
    created = next(e for e in events if e["type"] == "ticket.created")
    assert created["data"] == {"ticket_id": ticket.id}
    assert events.index(created) < events.index(replied[0])
    cursors = [int(e["cursor"]) for e in events]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    # Each event names the tenant's one before it: a receiver can tell a gap from the next.
    assert [e["previous"] for e in events[1:]] == [e["cursor"] for e in events[:-1]]
    for event in events:
        assert event["tenant_id"] == core_side.tenant.id
        assert event["id"].startswith("evt_") and event["time"].endswith("Z")
    assert len({e["id"] for e in events}) == len(events)


async def test_another_tenants_key_sees_none_of_them(core_side: CoreSide):
    start = await core_side.newest()
    ticket = await core_side.ticket(subject="Mine only")
    ours = await core_side.journaled(start, 1)
    assert any(e["data"].get("ticket_id") == ticket.id for e in ours)

    theirs = await core_side.feed(start, key=core_side.other_key)

    assert theirs == []
    other_ticket = await core_side.ticket(core_side.other, subject="Theirs")
    theirs = await core_side.feed(start, key=core_side.other_key)
    assert theirs and all(e["tenant_id"] == core_side.other.id for e in theirs)
    assert {e["data"].get("ticket_id") for e in theirs if e["type"] == "ticket.created"} == {
        other_ticket.id
    }
    assert not {e["id"] for e in theirs} & {e["id"] for e in await core_side.feed(start)}


async def test_after_pages_through_the_feed(core_side: CoreSide):
    start = await core_side.newest()
    ticket = await core_side.ticket(subject="Paging")
    for n in range(3):
        await core_side.reply(ticket, f"reply {n}")
    everything = await core_side.journaled(start, 4)

    paged, after = [], start
    async with core_side.client() as client:
        while True:
            response = await client.get("/core/v1/events", params={"after": after, "limit": "1"})
            page = response.json()
            if not page["events"]:
                break
            assert len(page["events"]) == 1 and page["next"] == page["events"][0]["cursor"]
            paged += page["events"]
            after = page["next"]
    assert paged == everything


@pytest.mark.parametrize(
    "params, field",
    [({"after": "abc"}, "after"), ({"after": "-1"}, "after"), ({"limit": "1001"}, "limit")],
)
async def test_bad_query_parameters_are_400_problems(core_side: CoreSide, params, field):
    async with core_side.client() as client:
        response = await client.get("/core/v1/events", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == f"/query/{field}"


async def test_the_feed_needs_a_key(core_side: CoreSide):
    async with core_side.client(key="core_nope.nope") as client:
        response = await client.get("/core/v1/events")
    assert response.status_code == 401


async def test_a_cursor_older_than_what_is_kept_is_410_with_where_to_resume(core_side: CoreSide):
    start = await core_side.newest()
    await core_side.ticket(subject="Soon forgotten")
    await core_side.journaled(start, 1)
    # Everything journaled so far becomes older than the retention, and is purged.
    assert await core_side.events_out.journal.purge(utcnow() + timedelta(days=8)) > 0

    async with core_side.client() as client:
        gone = await client.get("/core/v1/events", params={"after": start})
        future = await client.get("/core/v1/events", params={"after": "999999999"})
        resumed = await client.get("/core/v1/events", params={"after": gone.json()["resume_after"]})

    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert "resync" in gone.json()["detail"] or "drop what you derived" in gone.json()["detail"]
    assert future.status_code == 410  # never handed out: another database, say
    assert resumed.status_code == 200 and resumed.json()["events"] == []
    # New events after the purge are read on from there, their `previous` the purge horizon.
    after = gone.json()["resume_after"]
    await core_side.ticket(subject="After the purge")
    events = await core_side.journaled(after, 1)
    assert int(events[0]["cursor"]) > int(after)
    assert events[0]["previous"] is not None and int(events[0]["previous"]) <= int(after)
