"""Ticket list and detail, visibility (own or organization), replies, attachments."""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.core.contract import AttachmentDraft, ReplyDraft
from portal.customer.tickets import PAGE_SIZE
from tests.customer.conftest import csrf_from, key_from, sign_in

ALICE, BOB, CAROL = "alice@acme-corp.example", "bob@acme-corp.example", "carol@other.example"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
async def people(portal):
    """Alice and Bob in one organization, Carol in another; one ticket each."""
    core, tenant = portal.core, portal.tenant
    acme_corp = await core.customers.create_organization(
        tenant.id, "Acme Corp", "acme-corp.example"
    )
    other = await core.customers.create_organization(tenant.id, "Other", "other.example")
    tickets = {}
    for email, org in ((ALICE, acme_corp), (BOB, acme_corp), (CAROL, other)):
        customer = await core.customers.ensure_customer(tenant.id, email)
        await core.customers.set_customer_organization(tenant.id, customer.id, org.id)
        tickets[email] = await portal.ticket(email, f"Question from {email.split('@')[0]}")
    return tickets


async def test_own_tickets_only_by_default(portal, people):
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get("/portal/tickets")
        assert "Question from alice" in page.text
        assert "Question from bob" not in page.text
        assert "My requests" in page.text
        assert (await client.get(f"/portal/tickets/{people[ALICE].id}")).status_code == 200
        assert (await client.get(f"/portal/tickets/{people[BOB].id}")).status_code == 404


@pytest.mark.both_databases
async def test_organization_visibility(portal, people):
    await portal.settings_changed(ticket_visibility="organization")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get("/portal/tickets")
        assert "Question from alice" in page.text
        assert "Question from bob" in page.text
        assert "Question from carol" not in page.text
        assert "Our organization" in page.text
        bobs = await client.get(f"/portal/tickets/{people[BOB].id}")
        assert bobs.status_code == 200
        assert "Requested by" in bobs.text
        assert (await client.get(f"/portal/tickets/{people[CAROL].id}")).status_code == 404


async def test_a_customer_moved_into_an_organization_sees_its_tickets_when_told(portal, people):
    """The signed-in customer is kept between pages; the core's `customer.changed` event (not
    the cache's minute-long limit) makes the move show."""
    await portal.settings_changed(ticket_visibility="organization")
    core, tenant = portal.core, portal.tenant
    dave = await core.customers.ensure_customer(tenant.id, "dave@example.com")
    acme_corp = (await core.customers.find_customer(tenant.id, ALICE)).organization_id
    async with portal.client() as client:
        await sign_in(client, portal, dave.email)
        assert "Question from alice" not in (await client.get("/portal/tickets")).text
        await core.customers.set_customer_organization(tenant.id, dave.id, acme_corp)
        deadline = asyncio.get_running_loop().time() + 5
        while "Question from alice" not in (await client.get("/portal/tickets")).text:
            assert asyncio.get_running_loop().time() < deadline, "the move never showed"
            await asyncio.sleep(0.01)


async def test_organization_setting_without_an_organization_is_own(portal):
    await portal.settings_changed(ticket_visibility="organization")
    await portal.ticket("dave@example.com", "Dave's own")
    await portal.ticket("erin@example.com", "Erin's own")
    async with portal.client() as client:
        await sign_in(client, portal, "dave@example.com")
        page = await client.get("/portal/tickets")
    assert "Dave&#39;s own" in page.text
    assert "Erin" not in page.text


async def test_someone_elses_ticket_is_the_same_404_as_a_missing_one(portal, people):
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        others = await client.get(f"/portal/tickets/{people[CAROL].id}")
        missing = await client.get("/portal/tickets/999999")
        events = await client.get(f"/portal/tickets/{people[CAROL].id}/events")
        page = await client.get(f"/portal/tickets/{people[ALICE].id}")
        reply = await client.post(
            f"/portal/tickets/{people[CAROL].id}/replies",
            data={"csrf_token": csrf_from(page.text), "body": "hi"},
        )
    assert others.status_code == missing.status_code == events.status_code == 404
    assert reply.status_code == 404
    assert others.text == missing.text
    assert "Question from carol" not in others.text


async def test_ticket_detail_shows_the_public_conversation(portal):
    core, tenant = portal.core, portal.tenant
    agent = await core.tenants.create_agent(tenant.id, "sam@acme.test", "Sam Support", "x", "agent")
    ticket = await portal.ticket(ALICE, "Cannot log in")
    await core.tickets.assign_ticket(tenant.id, ticket.id, agent.id)
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="INTERNAL: customer is on the old plan",
            internal=True,
        ),
        "n1",
    )  # fmt: skip
    await core.tickets.add_reply(
        tenant.id, ticket.id,
        ReplyDraft(
            author_type="agent", author_id=agent.id,
            body="Please try <b>resetting</b> your password.", internal=False,
        ),
        "r1",
    )  # fmt: skip
    await portal.settings_changed(expected_response="within 4 hours")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
    text = page.text
    assert page.headers["cache-control"] == "no-store"
    assert "INTERNAL" not in text
    assert "Please try &lt;b&gt;resetting&lt;/b&gt; your password." in text
    assert "About: Cannot log in" in text
    assert "Sam Support" in text
    assert "within 4 hours" in text
    assert ">Open<" in text
    assert "Normal" in text
    assert f"#{ticket.number}" in text
    assert 'src="/static/customer/ticket.js"' in text


async def test_expected_response_only_when_the_tenant_has_one(portal):
    ticket = await portal.ticket(ALICE, "No promise")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
    assert "Expected response" not in page.text
    assert "Not assigned yet" in page.text


@pytest.mark.both_databases
async def test_list_filters_search_and_pages(portal):
    core, tenant = portal.core, portal.tenant
    for i in range(PAGE_SIZE + 5):
        ticket = await portal.ticket(ALICE, f"Invoice question {i:02d}")
        if i % 3 == 0:
            await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
    await portal.ticket(ALICE, "Printer jam")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        first = await client.get("/portal/tickets")
        assert first.text.count('<td><a href="/portal/tickets/') == PAGE_SIZE
        assert "31 requests" in first.text
        assert "Page 1 of 2" in first.text
        second = await client.get("/portal/tickets?page=2")
        assert second.text.count('<td><a href="/portal/tickets/') == 6
        closed = await client.get("/portal/tickets?state=closed")
        assert closed.text.count('<td><a href="/portal/tickets/') == 10
        assert "Printer jam" not in closed.text
        opened = await client.get("/portal/tickets?state=open")
        assert "21 requests" in opened.text
        found = await client.get("/portal/tickets", params={"q": "PRINTER"})
        assert found.text.count('<td><a href="/portal/tickets/') == 1
        assert "Printer jam" in found.text
        none = await client.get("/portal/tickets", params={"q": "100%_"})
        assert "No requests match your search." in none.text
        odd = await client.get("/portal/tickets?page=abc&state=bogus")
        assert odd.status_code == 200


@pytest.mark.both_databases
async def test_reply_with_attachment(portal):
    ticket = await portal.ticket(ALICE, "Screenshot attached")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
        data = {
            "csrf_token": csrf_from(page.text),
            "idempotency_key": key_from(page.text),
            "body": "Here is a <screenshot>.",
        }
        files = [("files", ("../../etc/shot.png", PNG, "application/octet-stream"))]
        sent = await client.post(f"/portal/tickets/{ticket.id}/replies", data=data, files=files)
        assert sent.status_code == 303
        assert re.fullmatch(rf"/portal/tickets/{ticket.id}#reply-\d+", sent.headers["location"])
        again = await client.post(f"/portal/tickets/{ticket.id}/replies", data=data, files=files)
        assert again.headers["location"] == sent.headers["location"]  # one reply, not two
        replies = await portal.core.tickets.list_replies(portal.tenant.id, ticket.id)
        assert [r.body for r in replies] == [
            "About: Screenshot attached",
            "Here is a <screenshot>.",
        ]
        (attachment,) = replies[-1].attachments
        assert attachment.filename == "shot.png"
        assert attachment.content_type == "image/png"

        shown = await client.get(f"/portal/tickets/{ticket.id}")
        assert "Here is a &lt;screenshot&gt;." in shown.text
        assert f'href="/portal/attachments/{attachment.id}"' in shown.text
        download = await client.get(f"/portal/attachments/{attachment.id}")
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "shot.png" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_reply_needs_csrf_and_text_and_accepted_files(portal):
    ticket = await portal.ticket(ALICE)
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
        url = f"/portal/tickets/{ticket.id}/replies"
        token = csrf_from(page.text)
        assert (await client.post(url, data={"body": "hi"})).status_code == 403
        bad_token = await client.post(url, data={"body": "hi", "csrf_token": token + "x"})
        assert bad_token.status_code == 403
        cross = await client.post(
            url, data={"body": "hi", "csrf_token": token}, headers={"origin": "https://evil.test"}
        )
        assert cross.status_code == 403
        empty = await client.post(url, data={"body": "  ", "csrf_token": token})
        assert empty.status_code == 400
        assert "Write a message or attach a file." in empty.text
        exe = await client.post(
            url,
            data={"body": "my program", "csrf_token": token},
            files=[("files", ("tool.png", b"MZ\x90\x00" + bytes(200), "image/png"))],
        )
        assert exe.status_code == 400
        assert "not a file type we accept" in exe.text
        assert "my program" in exe.text  # what they typed is kept
    replies = await portal.core.tickets.list_replies(portal.tenant.id, ticket.id)
    assert len(replies) == 1


async def test_attachment_access_control(portal, people):
    core, tenant = portal.core, portal.tenant
    store_root = portal.settings.data_path / "attachments"
    from portal.attachments import AttachmentStore

    store = AttachmentStore(store_root)
    agent = await core.tenants.create_agent(tenant.id, "sam@acme.test", "Sam", "x", "agent")
    public_file = store.save(tenant.id, "public.txt", b"public notes\n")
    secret_file = store.save(tenant.id, "secret.txt", b"internal only\n")
    public = await core.tickets.add_reply(
        tenant.id, people[ALICE].id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="See file", internal=False,
            attachments=(public_file,),
        ),
        "p",
    )  # fmt: skip
    internal = await core.tickets.add_reply(
        tenant.id, people[ALICE].id,
        ReplyDraft(
            author_type="agent", author_id=agent.id, body="note", internal=True,
            attachments=(AttachmentDraft("secret.txt", "text/plain", 14, secret_file.storage_key),),
        ),
        "i",
    )  # fmt: skip
    public_id = public.attachments[0].id
    internal_id = internal.attachments[0].id

    async with portal.client() as anonymous:
        nobody = await anonymous.get(f"/portal/attachments/{public_id}")
        assert nobody.status_code == 303
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        ok = await client.get(f"/portal/attachments/{public_id}")
        assert ok.status_code == 200
        assert ok.content == b"public notes\n"
        assert ok.headers["content-type"].startswith("text/plain")
        page = await client.get(f"/portal/tickets/{people[ALICE].id}")
        assert "secret.txt" not in page.text
        hidden = await client.get(f"/portal/attachments/{internal_id}")
        missing = await client.get("/portal/attachments/999999")
        assert hidden.status_code == missing.status_code == 404
    async with portal.client() as client:
        await sign_in(client, portal, CAROL)
        assert (await client.get(f"/portal/attachments/{public_id}")).status_code == 404
    await portal.settings_changed(ticket_visibility="organization")
    async with portal.client() as client:
        await sign_in(client, portal, BOB)
        assert (await client.get(f"/portal/attachments/{public_id}")).status_code == 200
        assert (await client.get(f"/portal/attachments/{internal_id}")).status_code == 404


async def test_pages_of_another_tenant_do_not_accept_the_session(portal):
    await portal.core.tenants.create_tenant("globex", "Globex")
    await portal.ticket(ALICE)
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        cookie = client.cookies.get("portal_customer")
    async with portal.client(host="globex.portal.test") as other:
        other.cookies.set("portal_customer", cookie)
        assert (await other.get("/portal/tickets")).status_code == 303


async def test_attachment_count_follows_the_tenant_limit(portal):
    await portal.settings_changed(attachment_max_count=1)
    ticket = await portal.ticket(ALICE)
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
        assert "Up to 1 file of at most 10 MB" in page.text
        two = await client.post(
            f"/portal/tickets/{ticket.id}/replies",
            data={"body": "two files", "csrf_token": csrf_from(page.text)},
            files=[
                ("files", ("a.txt", b"a\n", "text/plain")),
                ("files", ("b.txt", b"b\n", "text/plain")),
            ],
        )
    assert two.status_code == 400
    assert "Attach at most 1 file." in two.text


async def test_a_refused_risky_name_says_why(portal):
    await portal.settings_changed(attachment_dangerous_names="refuse")
    ticket = await portal.ticket(ALICE)
    before = await portal.core.tickets.list_replies(portal.tenant.id, ticket.id)
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
        sent = await client.post(
            f"/portal/tickets/{ticket.id}/replies",
            data={"body": "see the page", "csrf_token": csrf_from(page.text)},
            files=[("files", ("page.html", b"<p>hello</p>", "text/html"))],
        )
    assert sent.status_code == 400
    assert "files of this kind can run programs when opened" in sent.text
    assert await portal.core.tickets.list_replies(portal.tenant.id, ticket.id) == before
