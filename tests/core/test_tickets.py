"""The embedded core's ticket side, on SQLite and PostgreSQL."""

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.core.contract import (
    AttachmentDraft,
    Choice,
    Conflict,
    Field,
    FormDraft,
    NotFound,
    ReplyDraft,
    TicketDraft,
)
from portal.core.embedded import schema


@pytest.fixture
async def acme(core):
    return await core.tenants.create_tenant("acme", "Acme")


def draft(email="pat@example.com", subject="Printer on fire", **kw):
    return TicketDraft(subject=subject, description="Help!", requester_email=email, **kw)


async def test_tickets_list_by_customer_or_organization(core, acme):
    org = await core.customers.create_organization(acme.id, "Initech", "initech.com")
    pat = await core.customers.ensure_customer(acme.id, "pat@initech.com", "Pat")
    sam = await core.customers.ensure_customer(acme.id, "sam@initech.com", "Sam")
    for customer in (pat, sam):
        await core.customers.set_customer_organization(acme.id, customer.id, org.id)
    await core.customers.ensure_customer(acme.id, "lone@example.com")
    await core.tickets.create_ticket(acme.id, draft("pat@initech.com", "Pat's"), "k1")
    await core.tickets.create_ticket(acme.id, draft("sam@initech.com", "Sam's"), "k2")
    await core.tickets.create_ticket(acme.id, draft("lone@example.com", "Lone"), "k3")
    own = await core.tickets.list_tickets(acme.id, customer_id=pat.id)
    assert [t.subject for t in own.tickets] == ["Pat's"] and own.total == 1
    assert own.tickets[0].requester_email == "pat@initech.com"
    shared = await core.tickets.list_tickets(acme.id, organization_id=org.id)
    assert sorted(t.subject for t in shared.tickets) == ["Pat's", "Sam's"]


async def test_filters_search_and_paging(core, acme):
    for i in range(7):
        await core.tickets.create_ticket(acme.id, draft(subject=f"Issue {i} 100%_done"), f"k{i}")
    tickets = (await core.tickets.list_tickets(acme.id)).tickets
    await core.tickets.set_ticket_status(acme.id, tickets[0].id, "resolved")
    assert (await core.tickets.list_tickets(acme.id, state="open")).total == 6
    assert (await core.tickets.list_tickets(acme.id, state="closed")).total == 1
    assert (await core.tickets.list_tickets(acme.id, query="ISSUE 3")).total == 1
    assert (await core.tickets.list_tickets(acme.id, query="100%_")).total == 7
    assert (await core.tickets.list_tickets(acme.id, query="%")).total == 7
    assert (await core.tickets.list_tickets(acme.id, query="x%")).total == 0
    page = await core.tickets.list_tickets(acme.id, offset=5, limit=5)
    assert len(page.tickets) == 2 and page.total == 7


async def test_internal_notes_are_hidden_unless_asked_for(core, acme):
    agent = await core.tenants.create_agent(acme.id, "ann@acme.com", "Ann", "x", "agent")
    ticket = await core.tickets.create_ticket(acme.id, draft(requester_name="Pat"), "k1")
    await core.tickets.add_reply(
        acme.id,
        ticket.id,
        ReplyDraft(
            author_type="agent",
            author_id=agent.id,
            body="Customer is grumpy",
            internal=True,
        ),
        "n1",
    )
    reply = await core.tickets.add_reply(
        acme.id,
        ticket.id,
        ReplyDraft(
            author_type="agent",
            author_id=agent.id,
            body="On it!",
            internal=False,
        ),
        "r1",
    )
    again = await core.tickets.add_reply(
        acme.id,
        ticket.id,
        ReplyDraft(
            author_type="agent",
            author_id=agent.id,
            body="On it!",
            internal=False,
        ),
        "r1",
    )
    assert again.id == reply.id and reply.author_name == "Ann"
    public = await core.tickets.list_replies(acme.id, ticket.id)
    assert [(r.author_name, r.body) for r in public] == [("Pat", "Help!"), ("Ann", "On it!")]
    everything = await core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert len(everything) == 3


async def test_attachments_belong_to_their_reply(core, acme):
    files = (AttachmentDraft("a.png", "image/png", 10, "sha-a"),)
    ticket = await core.tickets.create_ticket(acme.id, draft(attachments=files), "k1")
    [first] = await core.tickets.list_replies(acme.id, ticket.id)
    [attachment] = first.attachments
    assert (attachment.filename, attachment.ticket_id) == ("a.png", ticket.id)
    assert (await core.tickets.get_attachment(acme.id, attachment.id)).storage_key == "sha-a"
    other = await core.tenants.create_tenant("other", "Other")
    with pytest.raises(NotFound):
        await core.tickets.get_attachment(other.id, attachment.id)


async def test_status_changes_are_events(core, acme):
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k1")
    events = core.events()
    waiter = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    await core.tickets.set_ticket_status(acme.id, ticket.id, "pending")
    event = await asyncio.wait_for(waiter, 2)
    assert (event.type, event.data["status"], event.data["previous"]) == (
        "ticket.status_changed",
        "pending",
        "open",
    )
    await events.aclose()
    with pytest.raises(Conflict):
        await core.tickets.set_ticket_status(acme.id, ticket.id, "exploded")


async def test_a_customer_reply_reopens_a_resolved_ticket(core, acme):
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k1")
    await core.tickets.set_ticket_status(acme.id, ticket.id, "resolved")
    await core.tickets.add_reply(
        acme.id,
        ticket.id,
        ReplyDraft(
            author_type="customer",
            author_id=ticket.customer_id,
            body="Still broken",
            internal=False,
        ),
        "c1",
    )
    assert (await core.tickets.get_ticket(acme.id, ticket.id)).status == "open"


async def test_rating_once_resolved_changeable_for_seven_days(core, acme):
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k1")
    with pytest.raises(Conflict, match="resolved"):
        await core.tickets.rate_ticket(acme.id, ticket.id, good=True, comment="")
    await core.tickets.set_ticket_status(acme.id, ticket.id, "resolved")
    first = await core.tickets.rate_ticket(acme.id, ticket.id, good=False, comment="slow")
    changed = await core.tickets.rate_ticket(
        acme.id, ticket.id, good=True, comment="fixed after all"
    )
    assert (changed.good, changed.comment, changed.created_at) == (
        True,
        "fixed after all",
        first.created_at,
    )
    async with core.engine.begin() as conn:
        await conn.execute(
            sa.update(schema.ratings).values(created_at=first.created_at - timedelta(days=8))
        )
    with pytest.raises(Conflict, match="7 days"):
        await core.tickets.rate_ticket(acme.id, ticket.id, good=False, comment="late")
    assert (await core.tickets.get_rating(acme.id, ticket.id)).good is True


async def test_forms_keep_fields_and_department_choices(core, acme):
    sales = await core.forms.create_department(acme.id, "Sales")
    tech = await core.forms.create_department(acme.id, "Tech")
    fields = (
        Field(
            "product",
            "Product",
            "choice",
            required=True,
            options=(Choice("a", "Alpha"), Choice("b", "Beta", (tech.id,))),
        ),
        Field("serial", "Serial number", "text", department_ids=(tech.id,)),
    )
    form = await core.forms.save_form(acme.id, FormDraft("Contact us", None, "ticket", fields))
    loaded = await core.forms.get_form(acme.id, form.id)
    assert loaded.fields == fields
    product, serial = loaded.fields
    assert [c.value for c in product.choices_for(sales.id)] == ["a"]
    assert [c.value for c in product.choices_for(tech.id)] == ["a", "b"]
    assert not serial.shown_for(sales.id) and serial.shown_for(tech.id)
    renamed = await core.forms.save_form(acme.id, FormDraft("Write to us", sales.id), form.id)
    assert (renamed.title, renamed.fields, renamed.department_id) == ("Write to us", (), sales.id)
    with pytest.raises(Conflict):
        await core.forms.save_form(acme.id, FormDraft("Dup", None, "ticket", fields + fields[:1]))
    other = await core.tenants.create_tenant("other", "Other")
    with pytest.raises(NotFound):
        await core.forms.get_form(other.id, form.id)
    with pytest.raises(NotFound):
        await core.forms.save_form(other.id, FormDraft("x", sales.id))


async def test_deflections_count_visits_without_tickets(core, acme):
    from portal.core.contract import ArticleDraft

    article = await core.kb.save_article(acme.id, ArticleDraft("en", "reset", "Reset", "body"))
    await core.forms.record_deflection(acme.id, "visit-1", article.id, "reset")
    await core.forms.record_deflection(acme.id, "visit-1", article.id, "reset")  # once per visit
    await core.forms.record_deflection(acme.id, "visit-2", article.id, "password")
    await core.forms.record_deflection(acme.id, "visit-3", article.id, "login")
    # visit-2 sends a ticket; visit-3's ticket is a retry of visit-2's key: not made, no mark.
    first = await core.tickets.create_ticket(acme.id, draft(visit_key="visit-2"), "key-2")
    again = await core.tickets.create_ticket(acme.id, draft(visit_key="visit-3"), "key-2")
    assert again.id == first.id
    # A ticket from a visit that opened nothing marks nothing.
    await core.tickets.create_ticket(acme.id, draft(visit_key="visit-4"), "key-4")
    [summary] = await core.forms.deflection_summary(acme.id)
    assert (summary.title, summary.opened, summary.without_ticket) == ("Reset", 3, 2)
    other = await core.tenants.create_tenant("other", "Other")
    with pytest.raises(NotFound):
        await core.forms.record_deflection(other.id, "v", article.id, "x")


async def test_a_token_is_spent_once(core):
    from datetime import UTC, datetime

    later = datetime.now(UTC) + timedelta(minutes=15)
    assert await core.customers.spend_token("abc", later) is True
    assert await core.customers.spend_token("abc", later) is False
    assert await core.customers.spend_token("def", later) is True


async def test_the_same_reply_sent_at_once_is_stored_once(core, acme):
    ticket = await core.tickets.create_ticket(acme.id, draft(), "k1")
    replies = await asyncio.gather(
        *[
            core.tickets.add_reply(
                acme.id,
                ticket.id,
                ReplyDraft(
                    author_type="customer",
                    author_id=ticket.customer_id,
                    body="Me too",
                    internal=False,
                ),
                "same",
            )
            for _ in range(5)
        ]
    )
    assert len({r.id for r in replies}) == 1
    assert len(await core.tickets.list_replies(acme.id, ticket.id)) == 2
