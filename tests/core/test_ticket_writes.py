"""How many statements the core spends on tickets: a ticket or a reply in one transaction with
numbers from a per-tenant counter and nothing read back; a list page counted only when it is
full. On SQLite and PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from portal.core.contract import AttachmentDraft, NotFound, ReplyDraft, TicketDraft
from portal.core.embedded import schema
from portal.core.embedded.core import EmbeddedCore
from portal.core.embedded.migrate import upgrade
from portal.core.embedded.rows import utcnow


class Counted:
    """The statements (first word and table) and commits the core's engine ran in a block."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.returning = 0  # statements with RETURNING
        self.commits = 0

    def saw(self, sql: str) -> None:
        verb, *words = sql.split()
        self.returning += "RETURNING" in words
        if verb == "COMMIT":
            self.commits += 1
        elif verb != "BEGIN":
            table = words[1] if verb == "INSERT" else words[0] if verb == "UPDATE" else ""
            self.statements.append(f"{verb} {table}".strip())


@asynccontextmanager
async def counted(core: EmbeddedCore) -> AsyncIterator[Counted]:
    """On SQLite, what `sqlite3` itself ran on the writer and the reader (statements that skip
    SQLAlchemy's execution included); on PostgreSQL, SQLAlchemy's statement events."""
    seen = Counted()
    if core.engine.dialect.name == "sqlite":
        async with core.engine.begin() as writer, core.engine.connect() as reader:
            drivers = [c.sync_connection.connection.dbapi_connection for c in (writer, reader)]
        for driver in drivers:
            driver.set_trace_callback(seen.saw)
        try:
            yield seen
        finally:
            for driver in drivers:
                driver.set_trace_callback(None)
        return
    engine = core.engine.sync_engine

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.saw(sql)

    def commit(_conn: Any) -> None:
        seen.commits += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "commit", commit)


@pytest.fixture
async def acme(core):
    return await core.tenants.create_tenant("acme", "Acme")


def draft(email="pat@example.com", name="Pat", **kw):
    return TicketDraft("Printer on fire", "Help!", email, name, **kw)


async def test_a_ticket_is_four_statements_in_one_transaction(core, acme):
    """On SQLite one read (the counter, the key, the requester), then the counter's UPDATE and
    a known requester is not written again; a tenant's first ticket INSERTs its counter, a new
    requester adds its INSERT. On PostgreSQL the four are one statement: each is a round trip
    there."""
    read, with_counter, first_number = (
        ["SELECT"],
        ["UPDATE ticket_numbers"],
        ["INSERT ticket_numbers"],
    )
    new = ["INSERT customers"]
    made = ["INSERT tickets", "INSERT ticket_replies"]
    expected = [  # the tenant's first ticket, a known requester, a new one
        ("pat@example.com", read + first_number + new + made),
        ("pat@example.com", read + with_counter + made),
        ("new@example.com", read + with_counter + new + made),
    ]
    for i, (email, statements) in enumerate(expected):
        async with counted(core) as seen:
            ticket = await core.tickets.create_ticket(acme.id, draft(email), f"k{i}")
        sqlite = core.engine.dialect.name == "sqlite"
        assert seen.statements == (statements if sqlite else ["WITH"])
        assert seen.commits == 1
        # SQLite builds a temporary table for each RETURNING: only the rare upserts have one.
        assert seen.returning == (statements.count("INSERT customers") + (i == 0) if sqlite else 1)
        # Nothing was read back: what it answered is what is stored.
        assert ticket == await core.tickets.get_ticket(acme.id, ticket.id)


async def test_a_reply_is_three_statements_and_is_what_the_list_shows(core, acme):
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k1")
    files = (AttachmentDraft("a.png", "image/png", 10, "sha-a"),)
    reply = ReplyDraft(
        author_type="customer", author_id=ticket.customer_id, body="More", internal=False
    )
    async with counted(core) as seen:
        plain = await core.tickets.add_reply(acme.id, ticket.id, reply, "r1")
    assert seen.statements == ["UPDATE tickets", "INSERT ticket_replies", "SELECT"]
    assert seen.commits == 1
    assert seen.returning == (0 if core.engine.dialect.name == "sqlite" else 2)
    with_file = await core.tickets.add_reply(
        acme.id, ticket.id, ReplyDraft(**{**reply.__dict__, "attachments": files}), "r2"
    )
    listed = await core.tickets.list_replies(acme.id, ticket.id)
    assert listed[1:] == [plain, with_file]
    assert plain.author_name == "Pat" and with_file.attachments[0].storage_key == "sha-a"
    # The same key again is the same reply, and touches nothing.
    before = await core.tickets.get_ticket(acme.id, ticket.id)
    assert await core.tickets.add_reply(acme.id, ticket.id, reply, "r1") == plain
    assert (await core.tickets.get_ticket(acme.id, ticket.id)).updated_at == before.updated_at


async def test_numbers_are_unique_per_tenant_when_tickets_race(core, acme):
    other = await core.tenants.create_tenant("other", "Other")
    made = await asyncio.gather(
        *[
            core.tickets.create_ticket(acme.id, draft(f"p{i}@example.com"), f"a{i}")
            for i in range(12)
        ],
        *[core.tickets.create_ticket(other.id, draft(), f"o{i}") for i in range(4)],
    )
    assert sorted(t.number for t in made if t.tenant_id == acme.id) == list(range(1, 13))
    assert sorted(t.number for t in made if t.tenant_id == other.id) == [1, 2, 3, 4]


async def test_tickets_asked_for_together_share_one_commit_and_fail_alone(core, acme):
    first = await core.tickets.create_ticket(acme.id, draft(), "first")
    async with counted(core) as seen:
        made = await asyncio.gather(
            *[
                core.tickets.create_ticket(acme.id, draft(f"p{i}@example.com"), f"b{i}")
                for i in range(5)
            ],
            core.tickets.create_ticket(acme.id, draft(), "first"),  # a retry: the first ticket
            core.tickets.create_ticket(acme.id, draft(department_id=10**6), "lost"),
            return_exceptions=True,
        )
    *new, again, lost = made
    # On PostgreSQL each commits alone: the server runs them side by side and groups commits.
    assert seen.commits == (1 if core.engine.dialect.name == "sqlite" else 5)
    assert isinstance(lost, NotFound)
    assert again == first
    # What failed was undone alone: no number lost, every new ticket stored as answered.
    assert sorted(t.number for t in new) == [2, 3, 4, 5, 6]
    for ticket in new:
        assert ticket == await core.tickets.get_ticket(acme.id, ticket.id)
    assert (await core.tickets.create_ticket(acme.id, draft(), "next")).number == 7


async def test_a_ticket_failing_after_it_wrote_undoes_its_batch_and_each_is_made_alone(core, acme):
    """A ticket whose attachment row cannot be stored fails after its ticket and reply were
    written: the batch's transaction is rolled back whole and every ticket made again in one of
    its own. The others are made; of the failed one nothing is left."""
    broken = AttachmentDraft("a.png", "image/png", 10, None)  # type: ignore[arg-type]
    drafts = [draft("p1@example.com"), draft(attachments=(broken,)), draft("p2@example.com")]
    async with counted(core) as seen:
        made = await asyncio.gather(
            *[core.tickets.create_ticket(acme.id, d, f"b{i}") for i, d in enumerate(drafts)],
            return_exceptions=True,
        )
    good, failed, other = made
    assert isinstance(failed, Exception) and not isinstance(good, Exception)
    assert not isinstance(other, Exception)
    listed = await core.tickets.list_tickets(acme.id)
    assert sorted(t.id for t in listed.tickets) == sorted([good.id, other.id])
    assert sorted(t.number for t in listed.tickets) == [1, 2]
    if core.engine.dialect.name == "sqlite":  # (PostgreSQL makes each alone anyway)
        assert seen.commits >= 2  # the batch's own was not the only one


async def test_a_retried_key_makes_one_ticket_and_uses_no_number(core, acme):
    first, *again = await asyncio.gather(
        *[core.tickets.create_ticket(acme.id, draft(), "same") for _ in range(4)]
    )
    assert {t.id for t in again} == {first.id}
    assert (await core.tickets.create_ticket(acme.id, draft(), "next")).number == first.number + 1


async def test_a_counter_behind_the_tickets_catches_up(core, acme):
    """Numbers taken past the counter (a restore, another writer) cost a retry, not an error."""
    await core.tickets.create_ticket(acme.id, draft(), "k1")
    async with core.engine.begin() as conn:
        await conn.execute(schema.ticket_numbers.update().values(last_number=0))
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k2")
    assert ticket.number == 2
    assert (await core.tickets.create_ticket(acme.id, draft(), "k3")).number == 3


async def test_a_requester_without_a_name_gets_the_one_a_ticket_brings(core, acme):
    customer = await core.customers.ensure_customer(acme.id, "anon@example.com")
    events = core.events()
    heard = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # let the subscription start before the ticket is made
    ticket = await core.tickets.create_ticket(acme.id, draft("Anon@Example.com", "Ann"), "k1")
    assert (await heard).type == "customer.changed"
    assert (await anext(events)).type == "ticket.created"
    await events.aclose()
    assert (ticket.customer_id, ticket.requester_name) == (customer.id, "Ann")
    assert (await core.customers.get_customer(acme.id, customer.id)).name == "Ann"
    # A name once given stays: a later ticket with another one does not change it.
    later = await core.tickets.create_ticket(acme.id, draft("anon@example.com", "Bob"), "k2")
    assert later.requester_name == "Ann"


async def test_a_list_page_is_counted_only_when_it_is_full(core, acme):
    for i in range(7):
        await core.tickets.create_ticket(acme.id, draft(), f"k{i}")
    cases = [
        ({}, 7, 1),  # one page holds them all: its length is the total
        ({"limit": 5}, 7, 2),  # a full page: counted
        ({"offset": 5, "limit": 5}, 7, 1),  # the last page: offset + its length
        ({"offset": 10, "limit": 5}, 7, 2),  # past the end: counted
        ({"query": "nothing like it"}, 0, 1),
    ]
    for options, total, statements in cases:
        async with counted(core) as seen:
            page = await core.tickets.list_tickets(acme.id, **options)
        assert page.total == total, options
        assert len(seen.statements) == statements, options


async def test_migration_0007_starts_each_counter_after_its_tenants_tickets(empty_database_url):
    core = EmbeddedCore(empty_database_url, migrate=False)
    await upgrade(core.engine, "0006")
    now = utcnow()
    async with core.engine.begin() as conn:
        for tenant_id, numbers in ((1, (1, 2, 7)), (2, ()), (3, (4,))):
            await conn.execute(
                schema.tenants.insert().values(
                    id=tenant_id, slug=f"t{tenant_id}", name="T", settings={}, created_at=now
                )
            )
            await conn.execute(
                schema.customers.insert().values(
                    id=tenant_id, tenant_id=tenant_id, email="a@example.com", created_at=now
                )
            )
            for number in numbers:
                await conn.execute(
                    schema.tickets.insert().values(
                        tenant_id=tenant_id,
                        number=number,
                        customer_id=tenant_id,
                        subject="s",
                        idempotency_key=f"k{number}",
                        custom_fields={},
                        created_at=now,
                        updated_at=now,
                    )
                )
    await upgrade(core.engine)
    try:
        async with core.engine.connect() as conn:
            counters = (await conn.execute(sa.select(schema.ticket_numbers))).all()
        assert sorted(tuple(row) for row in counters) == [(1, 7), (3, 4)]
        for tenant_id, expected in ((1, 8), (2, 1), (3, 5)):
            # (Their requester, whose id was given by hand, not by PostgreSQL's sequence.)
            ticket = await core.tickets.create_ticket(tenant_id, draft("a@example.com"), "new")
            assert ticket.number == expected
    finally:
        await core.close()
