"""The ticket list is rendered once per variant and kept: every customer still sees only their
own tickets, and every change to what a list shows, made anywhere, shows on the next view."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import sqlalchemy as sa

from portal.core.contract import EVENTS_RESUMED, Event, ReplyDraft, TicketDraft
from portal.customer.lists import LIST_EVENTS, TicketLists
from portal.customer.pages import KeptPage
from portal.kb.store import RenderedPage
from portal.security import hash_password
from tests.conftest import TEST_HASH_COST, customer_cookie
from tests.customer.conftest import csrf_from
from tests.kb.test_kept_pages import eventually
from tests.sessions.test_cache import told

ALICE, BOB, CAROL = "alice@acme-corp.example", "bob@acme-corp.example", "carol@other.example"
SUBJECTS = re.compile(r'<td><a href="/portal/tickets/\d+">([^<]+)</a></td>')
STATUSES = re.compile(r'<span class="status status-([a-z_]+)">')


class Reads:
    """SELECTs of one table on a core's engine (the embedded core lets listeners see them all)."""

    def __init__(self, core: Any, table: str) -> None:
        self.engine = core.engine.sync_engine
        self.table = f"FROM {table}"
        self.count = 0
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().startswith("SELECT") and self.table in sql:
            self.count += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


def subjects(page: str) -> list[str]:
    return SUBJECTS.findall(page)


@pytest.fixture
async def people(portal):
    """Alice and Bob in one organization, Carol in another; each with a ticket."""
    core, tenant = portal.core, portal.tenant
    acme_corp = await core.customers.create_organization(tenant.id, "Acme Corp")
    other = await core.customers.create_organization(tenant.id, "Other")
    found = {}
    for email, org in ((ALICE, acme_corp), (BOB, acme_corp), (CAROL, other)):
        customer = await core.customers.ensure_customer(tenant.id, email)
        found[email] = await core.customers.set_customer_organization(
            tenant.id, customer.id, org.id
        )
        await portal.ticket(email, f"Question from {email.split('@')[0]}")
    return found


@pytest.fixture
async def ada(portal):
    """An agent of the tenant."""
    password = hash_password("pw-123456", cost=TEST_HASH_COST)
    return await portal.core.tenants.create_agent(
        portal.tenant.id, "ada@acme.example", "Ada", password, "agent"
    )


async def signed_in(portal, customer) -> dict[str, str]:
    """Headers of a request by `customer`, signed in."""
    return {"cookie": await customer_cookie(portal.core, portal.settings.secret_key, customer)}


async def test_a_list_is_read_once_then_answered_as_kept_with_the_sessions_token(portal, people):
    alice = await signed_in(portal, people[ALICE])
    tickets, sessions = Reads(portal.core, "tickets"), Reads(portal.core, "sessions")
    try:
        async with portal.client() as client:
            first = await client.get("/portal/tickets", headers=alice)
            assert tickets.count >= 1 and sessions.count == 1
            tickets.count = sessions.count = 0
            second = await client.get("/portal/tickets", headers=alice)
            assert (tickets.count, sessions.count) == (0, 0)
            assert second.text == first.text
            assert subjects(second.text) == ["Question from alice"]
            assert second.headers["cache-control"] == "no-store"
            assert "frame-ancestors 'self'" in second.headers["content-security-policy"]
            # The token in the kept page is this session's: its forms work.
            out = await client.post(
                "/portal/sign-out", headers=alice, data={"csrf_token": csrf_from(second.text)}
            )
            assert out.status_code == 303
    finally:
        tickets.close()
        sessions.close()


async def test_kept_lists_go_gzipped_to_clients_that_take_gzip(portal, people):
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:
        plain = await client.get("/portal/tickets", headers=alice)
        zipped = await client.get("/portal/tickets", headers={**alice, "accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text  # httpx undoes the gzip


async def test_each_customer_gets_their_own_list_and_header(portal, people):
    alice, bob, carol = [await signed_in(portal, people[e]) for e in (ALICE, BOB, CAROL)]
    async with portal.client() as client:
        for _ in range(2):  # made, then kept
            for headers, email in ((alice, ALICE), (bob, BOB), (carol, CAROL)):
                page = (await client.get("/portal/tickets", headers=headers)).text
                assert subjects(page) == [f"Question from {email.split('@')[0]}"]
                assert f'<span class="portal-user">{email}</span>' in page
        await portal.settings_changed(ticket_visibility="organization")
        for _ in range(2):
            for headers, email in ((alice, ALICE), (bob, BOB)):
                page = (await client.get("/portal/tickets", headers=headers)).text
                assert sorted(subjects(page)) == ["Question from alice", "Question from bob"]
                assert f'<span class="portal-user">{email}</span>' in page
            page = (await client.get("/portal/tickets", headers=carol)).text
            assert subjects(page) == ["Question from carol"]
        await portal.settings_changed(ticket_visibility="own")
        page = (await client.get("/portal/tickets", headers=alice)).text
        assert subjects(page) == ["Question from alice"]


async def test_the_language_the_frame_and_the_query_pick_their_own_kept_page(portal, people):
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:
        norwegian = await client.get("/portal/tickets", headers={**alice, "accept-language": "nb"})
        english = await client.get("/portal/tickets", headers=alice)
        assert "Mine saker" in norwegian.text and "Mine saker" not in english.text
        framed = await client.get("/portal/tickets?embed=1", headers=alice)
        iframe = await client.get("/portal/tickets", headers={**alice, "sec-fetch-dest": "iframe"})
        again = await client.get("/portal/tickets", headers=alice)
        assert 'name="embed"' in framed.text and 'name="embed"' in iframe.text
        assert 'name="embed"' not in again.text and again.text == english.text
        missing = await client.get("/portal/tickets?q=nothing-like-it", headers=alice)
        assert subjects(missing.text) == [] and "No requests match your search." in missing.text


async def test_a_new_ticket_shows(portal, people):
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:

        async def shows_new() -> bool:
            page = (await client.get("/portal/tickets", headers=alice)).text
            return "A second question" in subjects(page)

        assert not await shows_new()
        await portal.ticket(ALICE, "A second question")  # as a form or an agent makes it
        await eventually(shows_new, "the new ticket")


async def test_replies_and_internal_notes_move_a_ticket_up(portal, people, ada):
    alice = await signed_in(portal, people[ALICE])
    first = await portal.ticket(ALICE, "Older question")
    await portal.ticket(ALICE, "Newer question")
    async with portal.client() as client:

        async def top(subject: str) -> bool:
            page = (await client.get("/portal/tickets", headers=alice)).text
            return subjects(page)[0] == subject

        assert await top("Newer question")
        reply = ReplyDraft(author_type="agent", author_id=ada.id, body="On it", internal=False)
        await portal.core.tickets.add_reply(portal.tenant.id, first.id, reply, "agent-reply")
        await eventually(lambda: top("Older question"), "the agent's reply")
        second = await portal.ticket(ALICE, "Newest question")
        await eventually(lambda: top("Newest question"), "the newest ticket")
        secret = "Internal: the customer's printer is on the recall list"
        note = ReplyDraft(author_type="agent", author_id=ada.id, body=secret, internal=True)
        await portal.core.tickets.add_reply(portal.tenant.id, first.id, note, "agent-note")
        await eventually(lambda: top("Older question"), "the internal note")
        page = (await client.get(f"/portal/tickets/{first.id}", headers=alice)).text
        assert "recall list" not in page
        assert second.id != first.id


async def test_a_status_change_shows_and_moves_the_ticket_between_filters(portal, people):
    alice = await signed_in(portal, people[ALICE])
    ticket = await portal.ticket(ALICE, "Fixed soon")
    async with portal.client() as client:

        async def listed(state: str) -> list[str]:
            return subjects(
                (await client.get(f"/portal/tickets?state={state}", headers=alice)).text
            )

        assert "Fixed soon" in await listed("open") and "Fixed soon" not in await listed("closed")
        await portal.core.tickets.set_ticket_status(portal.tenant.id, ticket.id, "resolved")

        async def moved() -> bool:
            return "Fixed soon" in await listed("closed") and "Fixed soon" not in await listed(
                "open"
            )

        await eventually(moved, "the status change")
        page = (await client.get("/portal/tickets", headers=alice)).text
        assert STATUSES.findall(page)[subjects(page).index("Fixed soon")] == "resolved"


async def test_an_assignment_moves_the_ticket_up(portal, people, ada):
    alice = await signed_in(portal, people[ALICE])
    core, tenant = portal.core, portal.tenant
    older = await portal.ticket(ALICE, "Older question")
    await portal.ticket(ALICE, "Newer question")
    async with portal.client() as client:

        async def top(subject: str) -> bool:
            return subjects((await client.get("/portal/tickets", headers=alice)).text)[0] == subject

        assert await top("Newer question")
        await core.tickets.assign_ticket(tenant.id, older.id, ada.id)
        await eventually(lambda: top("Older question"), "the assignment")


async def test_the_customers_own_reply_shows_on_their_next_list_at_once(portal, people):
    """No waiting for the event: the handler that stored the reply dropped the kept lists."""
    alice = await signed_in(portal, people[ALICE])
    ticket = await portal.ticket(ALICE, "Solved, or so we thought")
    await portal.core.tickets.set_ticket_status(portal.tenant.id, ticket.id, "resolved")
    async with portal.client() as client:
        await eventually(
            lambda: _status_of(client, alice, "Solved, or so we thought", "resolved"),
            "the resolution",
        )
        page = (await client.get(f"/portal/tickets/{ticket.id}", headers=alice)).text
        answer = await client.post(
            f"/portal/tickets/{ticket.id}/replies",
            headers=alice,
            data={"body": "It broke again", "csrf_token": csrf_from(page)},
        )
        assert answer.status_code == 303
        assert await _status_of(client, alice, "Solved, or so we thought", "open")


async def _status_of(client, headers, subject: str, status: str) -> bool:
    page = (await client.get("/portal/tickets", headers=headers)).text
    return STATUSES.findall(page)[subjects(page).index(subject)] == status


async def test_a_requesters_new_name_shows_in_the_organizations_list(portal, people):
    await portal.settings_changed(ticket_visibility="organization")
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:

        async def shows(name: str) -> bool:
            return name in (await client.get("/portal/tickets", headers=alice)).text

        assert await shows(BOB) and not await shows("Bob Builder")
        await portal.core.customers.ensure_customer(portal.tenant.id, BOB, "Bob Builder")
        await eventually(lambda: shows("Bob Builder"), "the requester's new name")


async def test_a_customer_who_leaves_the_organization_stops_seeing_its_tickets(portal, people):
    await portal.settings_changed(ticket_visibility="organization")
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:

        async def sees_bobs() -> bool:
            page = (await client.get("/portal/tickets", headers=alice)).text
            return "Question from bob" in subjects(page)

        assert await sees_bobs()
        await portal.core.customers.set_customer_organization(
            portal.tenant.id, people[ALICE].id, None
        )
        await eventually(lambda: _not(sees_bobs), "leaving the organization")
        page = (await client.get("/portal/tickets", headers=alice)).text
        assert subjects(page) == ["Question from alice"]


async def _not(check) -> bool:
    return not await check()


async def test_a_rating_drops_the_kept_lists(portal, people):
    alice = await signed_in(portal, people[ALICE])
    ticket = await portal.ticket(ALICE, "Rate me")
    await portal.core.tickets.set_ticket_status(portal.tenant.id, ticket.id, "resolved")
    reads = Reads(portal.core, "tickets")
    try:
        async with portal.client() as client:

            async def read_again() -> bool:
                reads.count = 0
                await client.get("/portal/tickets", headers=alice)
                return reads.count > 0

            await eventually(lambda: _not(read_again), "the list kept")
            await portal.core.tickets.rate_ticket(
                portal.tenant.id, ticket.id, good=True, comment=""
            )
            await eventually(read_again, "the rating's event")
    finally:
        reads.close()


async def test_a_branding_change_shows(portal, people):
    alice = await signed_in(portal, people[ALICE])
    async with portal.client() as client:
        assert "Acme Support" not in (await client.get("/portal/tickets", headers=alice)).text
        await portal.core.tenants.update_branding(
            portal.tenant.id, name="Acme Support", logo_url="", primary_color="#1f6feb"
        )

        async def shows() -> bool:
            page = (await client.get("/portal/tickets", headers=alice)).text
            return "My requests · Acme Support" in page

        await eventually(shows, "the new name")


# ------------------------------------------------------------------ the cache itself
@pytest.mark.parametrize("kind", sorted(LIST_EVENTS))
async def test_every_event_that_changes_a_list_drops_its_tenants_pages(core, kind):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    other = await core.tenants.create_tenant("other", "Other")
    lists = TicketLists()
    for each in (tenant, other):
        lists.keep("variant", lists.generation(each.id), _page(each))
    await lists.follow(told(Event(kind, tenant.id, {})))
    assert lists.kept(tenant, "variant") is None
    assert lists.kept(other, "variant") is not None


async def test_events_of_other_kinds_drop_nothing_and_an_outage_drops_everything(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    lists = TicketLists()
    lists.keep("variant", lists.generation(tenant.id), _page(tenant))
    await lists.follow(told(Event("article.changed", tenant.id, {})))
    assert lists.kept(tenant, "variant") is not None
    await lists.follow(told(Event(EVENTS_RESUMED, 0)))
    assert lists.kept(tenant, "variant") is None and len(lists) == 0


async def test_a_list_read_while_a_change_lands_is_not_kept(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    lists = TicketLists()
    before = lists.generation(tenant.id)  # a list's read starts...
    lists.invalidate(tenant.id)  # ...a ticket changes before it is rendered...
    lists.keep("variant", before, _page(tenant, b"stale"))
    assert lists.kept(tenant, "variant") is None  # ...so it is never served
    lists.keep("variant", lists.generation(tenant.id), _page(tenant, b"fresh"))
    assert lists.kept(tenant, "variant").rendered.body() == b"fresh"


async def test_every_write_that_changes_a_list_is_told_by_an_event_that_drops_it(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    agent = await core.tenants.create_agent(
        tenant.id,
        "ada@acme.example",
        "Ada",
        hash_password("pw-123456", cost=TEST_HASH_COST),
        "agent",
    )
    org = await core.customers.create_organization(tenant.id, "Acme Corp")
    events = core.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the subscription starts before the writes
    draft = TicketDraft("Hello", "From a form", "pat@example.com")
    ticket = await core.tickets.create_ticket(tenant.id, draft, "k1")
    customer_id = ticket.customer_id
    reply = ReplyDraft(author_type="agent", author_id=agent.id, body="Hi", internal=False)
    writes = [
        lambda: core.tickets.add_reply(tenant.id, ticket.id, reply, "r1"),
        lambda: core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved"),
        lambda: core.tickets.assign_ticket(tenant.id, ticket.id, agent.id),
        lambda: core.tickets.rate_ticket(tenant.id, ticket.id, good=True, comment=""),
        lambda: core.customers.set_customer_organization(tenant.id, customer_id, org.id),
        lambda: core.customers.ensure_customer(tenant.id, "pat@example.com", "Pat"),
        lambda: core.tenants.update_tenant_settings(tenant.id, {"ticket_visibility": "own"}),
    ]
    heard = [(await asyncio.wait_for(first, 5)).type]
    for write in writes:
        await write()
        heard.append((await asyncio.wait_for(anext(events), 5)).type)
    await events.aclose()
    assert all(kind in LIST_EVENTS for kind in heard), heard


def _page(tenant, body: bytes = b"page") -> KeptPage:
    return KeptPage(RenderedPage(tenant, (body,)), ())
