"""The edge's outbox against a real core API server: writes made while the core is stopped are
answered at once as pending, shown as sending, and land exactly once, in order, when it is back;
an edge restart drains what it left; a refused write is held for the admin; two drainers never
send a row twice."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from portal.core.contract import ArticleDraft, ReplyDraft, TicketDraft
from portal.edge.outbox import EdgeOutbox, PendingTicket
from portal.edge.outbox.rows import PENDING, SENT, SET_ASIDE, Row
from portal.security import hash_password
from tests.conftest import TEST_HASH_COST, customer_cookie, staff_cookie
from tests.outbox.conftest import HOST, SECRET, Setup, core_setup, edge, until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    async with core_setup(tmp_path_factory.mktemp("outbox")) as made:
        yield made


def _outbox(served: object) -> EdgeOutbox:
    found: EdgeOutbox = served.service("outbox")  # type: ignore[attr-defined]
    return found


async def _depth(served: object) -> int:
    return (await _outbox(served).outbox.stats())[0]


async def _customer_with_a_ticket(setup: Setup, name: str, subject: str) -> tuple[Any, Any, str]:
    """A customer of the core with a ticket there, and their signed-in cookie for the edge."""
    core, email = setup.core.running, f"{name}@example.com"
    customer = await core.customers.ensure_customer(setup.tenant.id, email, name.title())
    draft = TicketDraft(subject, "It is broken.", email, name.title())
    ticket = await core.tickets.create_ticket(setup.tenant.id, draft, uuid.uuid4().hex)
    return customer, ticket, await customer_cookie(core, SECRET, customer)


async def test_writes_while_the_core_is_stopped_land_once_in_order(setup: Setup) -> None:
    tid = setup.tenant.id
    customer, existing, cookie = await _customer_with_a_ticket(setup, "kim", "Old printer")
    async with edge(setup) as served, served.client(host=HOST) as client:
        client.headers["cookie"] = cookie
        # While the core answers, the customer's pages are read once (kept for an outage).
        definition = (await client.get(f"/api/forms/{setup.form.id}")).json()
        ticket_page = await client.get(f"/portal/tickets/{existing.id}")
        assert ticket_page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', ticket_page.text)
        assert csrf is not None
        assert (await client.get("/portal/tickets")).status_code == 200

        await setup.core.stop()
        submitted = await client.post(
            f"/api/forms/{setup.form.id}/submissions",
            json={
                "form_token": definition["form_token"],
                "idempotency_key": "outbox-form-0001",
                "name": "Kim <b>",
                "email": "kim@example.com",
                "subject": "Refund <script>alert(1)</script>",
                "description": "Charged twice.",
            },
        )
        assert submitted.status_code == 202, submitted.text
        answer = submitted.json()
        reference = answer["ticket"]["reference"]
        assert answer["pending"] is True and re.fullmatch(r"R-[0-9A-Z]{8}", reference)

        replied = await client.post(
            f"/portal/tickets/{existing.id}/replies",
            data={
                "body": "Any news? <i>soon</i>",
                "idempotency_key": "k" * 20,
                "csrf_token": csrf[1],
            },
        )
        assert replied.status_code == 303, replied.text
        # A reply to the ticket still in the outbox, as the core contract takes it.
        row = await _row(served, tid, reference)
        pending_ticket = await served.service("core").tickets.get_ticket(tid, -row.id)
        assert isinstance(pending_ticket, PendingTicket)
        reply_key = uuid.uuid4().hex
        await served.service("core").tickets.add_reply(
            tid,
            pending_ticket.id,
            ReplyDraft(author_type="customer", author_id=customer.id, body="More", internal=False),
            reply_key,
        )

        listing = await client.get("/portal/tickets")
        assert reference in listing.text and "Sending" in listing.text
        assert "<script>alert(1)</script>" not in listing.text  # escaped
        page = await client.get(f"/portal/tickets/{existing.id}")
        assert "reply-pending" in page.text and "&lt;i&gt;soon&lt;/i&gt;" in page.text
        waiting = await _outbox(served).outbox.store.listing(tid, (PENDING,))
        # (No "visit" row: this visit opened no suggestion, so there is no deflection to mark.)
        assert sorted(row.kind for row in waiting) == ["reply", "reply", "ticket"]

        await setup.core.start()
        await until(lambda: _depth_is(served, 0), "the outbox to drain")
        core = setup.core.running
        page_of = await core.tickets.list_tickets(tid, customer_id=customer.id)
        created = [t for t in page_of.tickets if t.subject.startswith("Refund")]
        assert len(created) == 1
        bodies = [r.body for r in await core.tickets.list_replies(tid, created[0].id)]
        assert bodies == ["Charged twice.", "More"]
        old = [r.body for r in await core.tickets.list_replies(tid, existing.id)]
        assert old == ["It is broken.", "Any news? <i>soon</i>"]

        listing = await client.get("/portal/tickets")
        assert reference not in listing.text and "Sending" not in listing.text
        page = await client.get(f"/portal/tickets/{existing.id}")
        assert "reply-pending" not in page.text

        # The same form sent again (the visitor's retry): still the one ticket.
        again = await client.post(
            f"/api/forms/{setup.form.id}/submissions",
            json={
                "form_token": definition["form_token"],
                "idempotency_key": "outbox-form-0001",
                "name": "Kim <b>",
                "email": "kim@example.com",
                "subject": "Refund <script>alert(1)</script>",
                "description": "Charged twice.",
            },
        )
        assert again.status_code == 201 and again.json()["ticket"]["number"] == created[0].number


async def _row(served: object, tenant_id: int, reference: str) -> Row:
    rows = await _outbox(served).outbox.store.listing(tenant_id, (PENDING, SENT, SET_ASIDE))
    return next(row for row in rows if row.reference == reference)


async def _depth_is(served: object, depth: int) -> bool:
    return await _depth(served) == depth


def _draft(subject: str, **kw: object) -> TicketDraft:
    return TicketDraft(subject, "Details.", "lee@example.com", "Lee", **kw)  # type: ignore[arg-type]


async def test_a_suggestion_opened_and_the_ticket_after_it_reach_the_core_in_order(
    setup: Setup,
) -> None:
    tid = setup.tenant.id
    article = await setup.core.running.kb.save_article(
        tid, ArticleDraft(language="en", slug="paper-jam", title="Paper jam", body_md="Open it.")
    )
    async with edge(setup) as served:
        forms, tickets = served.service("core").forms, served.service("core").tickets
        await setup.core.stop()
        await forms.record_deflection(tid, "visit-with-one", article.id, "jam")
        followed = _draft("Still jammed", visit_key="visit-with-one")
        alone = _draft("Nothing opened", visit_key="visit-without-suggestions")
        streams = []
        for ticket_draft in (followed, alone):
            ticket = await tickets.create_ticket(tid, ticket_draft, uuid.uuid4().hex)
            assert isinstance(ticket, PendingTicket)
            rows = await _outbox(served).outbox.store.listing(tid, (PENDING,))
            streams.append([row.stream for row in rows if row.id == -ticket.id])
        [opened] = [r.stream for r in rows if r.method == "record_deflection"]
        # The ticket waits behind the suggestion opened in its visit; the other waits for nothing.
        assert streams == [[opened], [streams[1][0]]] and streams[1][0] != opened
        await setup.core.start()
        await until(lambda: _depth_is(served, 0), "the visit's writes to go through")
    [summary] = [
        s
        for s in await setup.core.running.forms.deflection_summary(tid)
        if s.article_id == article.id
    ]
    # Opened once, and marked as followed by a ticket: the mark came after what it marks.
    assert (summary.opened, summary.without_ticket) == (1, 0)


async def test_a_reply_the_core_took_still_shows_while_the_core_is_away(setup: Setup) -> None:
    _, ticket, cookie = await _customer_with_a_ticket(setup, "lee", "Slow scanner")
    async with edge(setup) as served, served.client(host=HOST) as client:
        client.headers["cookie"] = cookie
        page = await client.get(f"/portal/tickets/{ticket.id}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        replied = await client.post(
            f"/portal/tickets/{ticket.id}/replies",
            data={"body": "Still slow today.", "idempotency_key": "s" * 20, "csrf_token": csrf[1]},
        )
        assert replied.status_code == 303, replied.text
        assert await _depth(served) == 0  # the core took it at once
        await setup.core.stop()
        try:
            again = await client.get(f"/portal/tickets/{ticket.id}")
        finally:
            await setup.core.start()
    # The page comes from the last answer kept for the outage, with the confirmed reply in it.
    assert again.status_code == 200
    assert "Still slow today." in again.text and "reply-pending" not in again.text


async def test_an_edge_restart_drains_what_the_last_one_left(setup: Setup) -> None:
    tid = setup.tenant.id
    async with edge(setup) as served:
        await setup.core.stop()
        queued = await served.service("core").tickets.create_ticket(
            tid, _draft("Left behind"), uuid.uuid4().hex
        )
        assert isinstance(queued, PendingTicket)
        assert await _depth(served) >= 1
    await setup.core.start()
    async with edge(setup, "edge-again") as again:
        await until(lambda: _depth_is(again, 0), "the new edge to drain the outbox")
    tickets = (await setup.core.running.tickets.list_tickets(tid, query="Left behind")).tickets
    assert [t.subject for t in tickets] == ["Left behind"]


async def test_a_refused_write_is_held_for_the_admin_and_blocks_nothing_else(
    setup: Setup,
) -> None:
    tid = setup.tenant.id
    core = setup.core.running
    email = f"admin-{uuid.uuid4().hex[:6]}@acme.test"
    await core.tenants.create_agent(
        tid, email, "Ada", hash_password("pw-123456", cost=TEST_HASH_COST), "admin"
    )
    cookie = await staff_cookie(core, SECRET, setup.tenant, email)
    # A department that does not exist yet (ids come in order): the core refuses the ticket.
    missing_department = max((d.id for d in await core.forms.list_departments(tid)), default=0) + 1
    async with edge(setup) as served, served.client(host=HOST) as client:
        client.headers["cookie"] = cookie
        tickets = served.service("core").tickets
        await setup.core.stop()
        refused = await tickets.create_ticket(
            tid, _draft("Wrong desk", department_id=missing_department), uuid.uuid4().hex
        )
        await tickets.add_reply(
            tid,
            refused.id,
            ReplyDraft(author_type="agent", author_id=1, body="Waiting on it", internal=False),
            uuid.uuid4().hex,
        )
        await tickets.add_reply(
            tid,
            99_999_999,
            ReplyDraft(author_type="agent", author_id=1, body="No such ticket", internal=False),
            uuid.uuid4().hex,
        )
        fine = await tickets.create_ticket(tid, _draft("Other stream"), uuid.uuid4().hex)
        assert isinstance(fine, PendingTicket) and isinstance(refused, PendingTicket)
        await setup.core.start()
        await until(lambda: _depth_is(served, 0), "the outbox to go through")
        assert (await setup.core.running.tickets.list_tickets(tid, query="Other stream")).total == 1

        held = await _outbox(served).outbox.store.listing(tid, (SET_ASIDE,))

        assert len(held) == 3
        ticket_row = next(r for r in held if r.reference == refused.reference)
        assert "department" in ticket_row.reason.lower() or "404" in ticket_row.reason
        waiting_reply = next(r for r in held if r.parent_id == ticket_row.id)
        assert waiting_reply.reason.startswith(f"Waits for {ticket_row.reference}")
        orphan = next(r for r in held if r.kind == "reply" and r.parent_id is None)

        page = await client.get("/admin/outbox")
        assert page.status_code == 200
        for row in held:
            assert row.reference in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None

        # Discard the reply to a ticket that does not exist: never sent, no longer listed.
        discarded = await client.post(
            "/admin/outbox/discard", data={"reference": orphan.reference, "csrf_token": csrf[1]}
        )
        assert discarded.status_code == 303
        assert orphan.reference not in (await client.get("/admin/outbox")).text
        unknown = await client.post(
            "/admin/outbox/retry", data={"reference": "R-NOSUCH00", "csrf_token": csrf[1]}
        )
        assert unknown.status_code == 400

        # The department exists now: Retry sends the ticket, then the reply that waited on it.
        department = await setup.core.running.forms.create_department(tid, "Desk")
        assert department.id == missing_department
        retried = await client.post(
            "/admin/outbox/retry", data={"reference": ticket_row.reference, "csrf_token": csrf[1]}
        )
        assert retried.status_code == 303
        await until(lambda: _depth_is(served, 0), "the retried writes to go through")
        assert await _outbox(served).outbox.store.listing(tid, (SET_ASIDE,)) == []
        landed = (await setup.core.running.tickets.list_tickets(tid, query="Wrong desk")).tickets
        assert len(landed) == 1
        bodies = [r.body for r in await setup.core.running.tickets.list_replies(tid, landed[0].id)]
        assert bodies == ["Details.", "Waiting on it"]


async def test_two_drainers_on_one_edge_database_never_send_a_row_twice(setup: Setup) -> None:
    tid = setup.tenant.id
    accepted: list[str] = []

    async def count(response: httpx.Response) -> None:
        key = response.request.headers.get("idempotency-key")
        if key and response.request.method == "POST" and response.status_code < 300:
            accepted.append(key)

    async with edge(setup, "one") as one, edge(setup, "two") as two:
        for served in (one, two):
            _outbox(served).outbox.client.http.event_hooks["response"].append(count)
        await setup.core.stop()
        subjects = [f"Batch {uuid.uuid4().hex[:8]}" for _ in range(20)]
        for index, subject in enumerate(subjects):
            target = one if index % 2 else two
            await target.service("core").tickets.create_ticket(
                tid, _draft(subject), uuid.uuid4().hex
            )
        async with one.client(host=HOST) as client:
            ready = await client.get("/readyz")
            metrics = await client.get("/metrics")
        assert ready.status_code == 503 and ready.json()["outbox"]["depth"] == 20
        assert ready.json()["outbox"]["oldest_age_s"] >= 0
        assert "portal_outbox_depth 20.0" in metrics.text
        await setup.core.start()
        await until(lambda: _depth_is(one, 0), "both drainers to empty the outbox")
    core = setup.core.running
    for subject in subjects:
        assert (await core.tickets.list_tickets(tid, query=subject)).total == 1
    assert len(accepted) == len(set(accepted)) >= 20
