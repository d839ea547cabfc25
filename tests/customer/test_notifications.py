"""Mail to the requester on agent replies and status changes, with links into the ticket."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from portal.core.contract import ReplyDraft, TicketDraft
from tests.customer.conftest import link_path, mail_text, mails_to, wait_mail

ALICE = "alice@example.com"
BOB = "bob@example.com"
RATE_RE = re.compile(r"(Good|Bad): (https?://\S+/portal/rate/\S+)")


@pytest.fixture
async def agent(portal):
    return await portal.core.tenants.create_agent(
        portal.tenant.id, "sam@acme.test", "Sam Support", "x", "agent"
    )


async def test_mail_on_agent_reply_with_a_link_into_the_ticket(portal, agent):
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Broken widget")
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="Internal: check logs", internal=True,
        ),
        "n",
    )  # fmt: skip
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="customer", author_id=ticket.customer_id, body="Any news?", internal=False,
        ),
        "c",
    )  # fmt: skip
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="We fixed the widget.", internal=False,
        ),
        "a",
    )  # fmt: skip
    message = await wait_mail(portal.smtp, ALICE)
    assert message["Subject"] == f"[#{ticket.number}] New reply: Broken widget"
    assert "Acme" in message["From"]
    text = mail_text(message)
    assert "Sam Support replied" in text
    assert "We fixed the widget." in text
    assert "Internal" not in text
    # Events are mailed in order: once the mail of a later change is in, nothing more came of
    # the replies (the note and her own reply went before the agent's and got none).
    await core.tickets.set_ticket_status(tenant.id, ticket.id, "pending", agent_id=agent.id)
    await wait_mail(portal.smtp, ALICE, lambda m: "Status" in m["Subject"])
    assert [m["Subject"] for m in mails_to(portal.smtp, ALICE)] == [
        f"[#{ticket.number}] New reply: Broken widget",
        f"[#{ticket.number}] Status: Waiting for you - Broken widget",
    ]

    async with portal.client() as client:
        path = link_path(message)
        assert (await client.get(path)).status_code == 200
        done = await client.post(path)
        assert done.status_code == 303
        assert done.headers["location"] == f"/portal/tickets/{ticket.id}"
        page = await client.get(done.headers["location"])
        assert "We fixed the widget." in page.text
        # Clicking the link again while signed in goes straight to the ticket.
        again = await client.get(path)
        assert again.status_code == 303
        assert again.headers["location"] == f"/portal/tickets/{ticket.id}"


async def test_mail_on_status_change_and_rating_links_on_resolve(portal, agent):
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Slow sync")
    await core.tickets.set_ticket_status(tenant.id, ticket.id, "pending", agent_id=agent.id)
    pending = await wait_mail(portal.smtp, ALICE)
    assert pending["Subject"] == f"[#{ticket.number}] Status: Waiting for you - Slow sync"
    assert "changed from Open to Waiting for you" in mail_text(pending)
    assert not RATE_RE.search(mail_text(pending))

    await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved", agent_id=agent.id)
    resolved = await wait_mail(portal.smtp, ALICE, seen=1)
    text = mail_text(resolved)
    assert "changed from Waiting for you to Resolved" in text
    links = dict(RATE_RE.findall(text))
    assert set(links) == {"Good", "Bad"}
    assert f"/portal/tickets/{ticket.id}" not in text  # the ticket link is a signed sign-in link
    assert "/portal/sign-in/" in text

    async with portal.client() as client:  # no session: the rating link is enough
        bad = urlsplit(links["Bad"]).path
        form = await client.get(bad)
        assert form.status_code == 200
        assert "Slow sync" in form.text
        assert 'value="0" checked' in form.text
        assert await core.tickets.get_rating(tenant.id, ticket.id) is None  # opening stores nothing
        good = urlsplit(links["Good"]).path
        assert 'value="1" required checked' in (await client.get(good)).text
        saved = await client.post(good, data={"good": "1", "comment": "Quick and kind"})
        assert saved.status_code == 200
        assert "Your rating is saved" in saved.text
        rating = await core.tickets.get_rating(tenant.id, ticket.id)
        assert rating is not None and rating.good and rating.comment == "Quick and kind"
        changed = await client.post(bad, data={"good": "0", "comment": "It broke again"})
        assert changed.status_code == 200
        rating = await core.tickets.get_rating(tenant.id, ticket.id)
        assert rating is not None and not rating.good and rating.comment == "It broke again"


async def test_no_mail_when_the_tenant_switched_them_off(portal, agent):
    await portal.settings_changed(customer_notifications=False)
    ticket = await portal.ticket(ALICE, "Quiet please")
    await portal.core.tickets.set_ticket_status(portal.tenant.id, ticket.id, "pending")
    # A later change at a tenant that keeps them on: events are mailed in order, so once its
    # mail is in, the first change was handled (the setting is read when an event is handled,
    # so switching it back on here would race with that).
    globex = await portal.core.tenants.create_tenant("globex", "Globex")
    theirs = await portal.core.tickets.create_ticket(
        globex.id, TicketDraft("Loud please", "Mail me", requester_email=BOB), "bob"
    )
    await portal.core.tickets.set_ticket_status(globex.id, theirs.id, "pending")
    await wait_mail(portal.smtp, BOB)
    assert mails_to(portal.smtp, ALICE) == []
