"""The signed-in customer kept between requests: read once, dropped by the core's events."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from portal.core.contract import EVENTS_RESUMED, Event, TicketDraft
from portal.csrf import csrf_ok
from portal.security import Signer
from portal.sessions.cache import SessionCache


class Reads:
    """SELECTs of the customers table on a core's engine."""

    def __init__(self, core: Any) -> None:
        self.engine = core.engine.sync_engine
        self.count = 0
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().startswith("SELECT") and "FROM customers" in sql:
            self.count += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


async def told(*events: Event) -> AsyncIterator[Event]:
    for event in events:
        yield event


@pytest.fixture
async def acme(core):
    return await core.tenants.create_tenant("acme", "Acme")


async def test_a_customer_is_read_once_until_the_core_says_it_changed(core, acme):
    pat = await core.customers.ensure_customer(acme.id, "pat@example.com", "Pat")
    sam = await core.customers.ensure_customer(acme.id, "sam@example.com", "Sam")
    org = await core.customers.create_organization(acme.id, "Initech")
    cache, reads = SessionCache(), Reads(core)
    try:
        for _ in range(3):
            assert (await cache.customer(core, acme.id, pat.id)).organization_id is None
        await cache.customer(core, acme.id, sam.id)
        assert reads.count == 2
        await core.customers.set_customer_organization(acme.id, pat.id, org.id)
        reads.count = 0
        # Other tenants' and other customers' changes drop nothing of Pat's.
        await cache.follow(told(Event("customer.changed", acme.id + 1, {"customer_id": pat.id})))
        assert (await cache.customer(core, acme.id, pat.id)).organization_id is None
        await cache.follow(told(Event("customer.changed", acme.id, {"customer_id": pat.id})))
        assert (await cache.customer(core, acme.id, pat.id)).organization_id == org.id
        await cache.customer(core, acme.id, sam.id)
        assert reads.count == 1
        # After a hub outage nothing kept is trusted.
        await cache.follow(told(Event(EVENTS_RESUMED, 0)))
        await cache.customer(core, acme.id, pat.id)
        await cache.customer(core, acme.id, sam.id)
        assert reads.count == 3
    finally:
        reads.close()


async def test_every_change_of_a_customer_is_told(core, acme):
    events = core.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the subscription starts before the changes
    pat = await core.customers.ensure_customer(acme.id, "pat@example.com")
    org = await core.customers.create_organization(acme.id, "Initech")
    await core.customers.ensure_customer(acme.id, "pat@example.com", "Pat")  # gets a name
    await core.customers.ensure_customer(acme.id, "pat@example.com", "Other")  # keeps it
    await core.customers.set_customer_organization(acme.id, pat.id, org.id)
    await core.customers.verify_customer_email(acme.id, pat.id)
    await core.customers.verify_customer_email(acme.id, pat.id)  # verified already
    await core.customers.set_customer_organization(acme.id, pat.id, None)
    # A ticket's event closes the sequence: every customer event before it is counted.
    await core.tickets.create_ticket(acme.id, TicketDraft("s", "d", "sam@example.com"), "k")
    heard = [await first]
    while heard[-1].type != "ticket.created":
        heard.append(await anext(events))
    await events.aclose()
    changes = [(e.tenant_id, e.data) for e in heard if e.type == "customer.changed"]
    assert changes == [(acme.id, {"customer_id": pat.id})] * 4


async def test_a_sessions_csrf_token_is_made_once_and_stays_valid(core):
    cache, signer = SessionCache(), Signer("a-secret-key-long-enough-for-the-tests-0123456789")
    first = cache.csrf_token(signer, "session-a")
    assert cache.csrf_token(signer, "session-a") == first
    assert csrf_ok(signer, "session-a", first)
    other = cache.csrf_token(signer, "session-b")
    assert other != first and not csrf_ok(signer, "session-a", other)
