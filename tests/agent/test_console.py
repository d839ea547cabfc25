"""The agent console over real HTTP: tickets, conversation, replies, notes, status, assignee."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from portal.attachments import AttachmentStore
from portal.core.contract import Event, Tenant, Ticket, TicketDraft

AGENT_EMAIL = "agent@acme.test"
AGENT_PASSWORD = "agent password 123"
ADMIN_EMAIL = "boss@acme.test"
ADMIN_PASSWORD = "boss password 123"
OTHER_EMAIL = "agent@bravo.test"
OTHER_PASSWORD = "bravo password 123"
TOKEN_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
KEY_RE = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]+)">')


# ------------------------------------------------------------------ helpers
def hidden(pattern: re.Pattern[str], page: str) -> str:
    found = pattern.findall(page)
    assert found, f"no hidden field matching {pattern.pattern} on the page"
    return html.unescape(found[0])


async def log_in(
    client: httpx.AsyncClient, email: str, password: str, next_url: str | None = None
) -> httpx.Response:
    page = await client.get("/admin/login", params={"next": next_url} if next_url else None)
    assert page.status_code == 200
    data = {"csrf_token": hidden(TOKEN_RE, page.text), "email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return await client.post("/admin/login", data=data)


async def ticket_form(client: httpx.AsyncClient, ticket: Ticket) -> tuple[str, str]:
    """(CSRF token, idempotency key) from a fresh render of the ticket page."""
    page = await client.get(f"/agent/tickets/{ticket.id}")
    assert page.status_code == 200, page.text
    return hidden(TOKEN_RE, page.text), hidden(KEY_RE, page.text)


async def new_ticket(
    server, tenant: Tenant, subject: str = "Printer on fire", **kw: object
) -> Ticket:
    draft = TicketDraft(
        subject=subject,
        description=str(kw.pop("description", "It is on fire.\nPlease help.")),
        requester_email=str(kw.pop("email", "pat@example.com")),
        requester_name=str(kw.pop("name", "Pat Customer")),
        **kw,  # type: ignore[arg-type]
    )
    return await server.core.tickets.create_ticket(tenant.id, draft, f"test:{tenant.id}:{subject}")


def flash(page: str) -> str:
    match = re.search(r'<p class="flash" role="status">(.*?)</p>', page, re.S)
    assert match, "no flash message on the page"
    return html.unescape(match.group(1))


@asynccontextmanager
async def recorded_events(core) -> AsyncIterator[list[Event]]:
    """Every core event published while the block runs (subscribed before it starts)."""
    seen: list[Event] = []

    async def follow() -> None:
        async for event in core.events():
            seen.append(event)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)  # the task's first step subscribes
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("it never happened")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ fixtures
@pytest.fixture
async def acme(server) -> Tenant:
    tenant = await server.tenant("acme", "Acme")
    await server.agent(tenant, AGENT_EMAIL, AGENT_PASSWORD, role="agent")
    await server.agent(tenant, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    return tenant


@pytest.fixture
async def bravo(server) -> Tenant:
    tenant = await server.tenant("bravo", "Bravo")
    await server.agent(tenant, OTHER_EMAIL, OTHER_PASSWORD, role="admin")
    return tenant


@pytest.fixture
async def agent(server, acme) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as an agent with role "agent" (not admin)."""
    async with server.client() as client:
        response = await log_in(client, AGENT_EMAIL, AGENT_PASSWORD)
        assert response.status_code == 303
        yield client


@pytest.fixture
async def bravo_agent(server, bravo) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client(host="bravo.portal.test") as client:
        response = await log_in(client, OTHER_EMAIL, OTHER_PASSWORD)
        assert response.status_code == 303
        yield client


# ------------------------------------------------------------------ sign-in
async def test_signed_out_agent_goes_through_login_and_lands_on_the_ticket(server, acme):
    ticket = await new_ticket(server, acme)
    path = f"/agent/tickets/{ticket.id}"
    async with server.client() as client:
        response = await client.get(path)
        assert response.status_code == 303
        location = urlsplit(response.headers["location"])
        assert location.path == "/admin/login"
        assert parse_qs(location.query)["next"] == [path]
        login_page = await client.get(response.headers["location"])
        assert f'name="next" value="{path}"' in login_page.text
        signed_in = await log_in(client, AGENT_EMAIL, AGENT_PASSWORD, next_url=path)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == path
        page = await client.get(path)
        assert page.status_code == 200
        assert "Printer on fire" in page.text
        assert page.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/agent/tickets", "/agent/tickets/1", "/agent/attachments/1"])
async def test_every_console_page_needs_a_signed_in_agent(server, acme, path):
    async with server.client() as client:
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login")


async def test_signed_out_posts_change_nothing(server, acme):
    ticket = await new_ticket(server, acme)
    async with server.client() as client:
        for action, data in [
            ("reply", {"body": "Hi", "action": "reply", "idempotency_key": "k" * 20}),
            ("status", {"status": "closed"}),
            ("assign", {"assignee": "none"}),
        ]:
            response = await client.post(f"/agent/tickets/{ticket.id}/{action}", data=data)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/admin/login?next=")
    assert (
        len(await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)) == 1
    )
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).status == "open"


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/agent/tickets?state=all", "/agent/tickets?state=all"),
        ("/agent", "/agent"),
        ("/agentx/tickets", "/admin/"),
        ("//evil.example/agent/", "/admin/"),
        ("https://evil.example/agent/tickets", "/admin/"),
    ],
)
async def test_next_may_lead_into_the_console_but_nowhere_else(server, acme, next_url, expected):
    async with server.client() as client:
        response = await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD, next_url=next_url)
        assert response.status_code == 303
        assert response.headers["location"] == expected


async def test_agents_and_admins_both_use_the_console(server, acme, agent):
    ticket = await new_ticket(server, acme)
    listing = await agent.get("/agent/tickets")
    assert listing.status_code == 200
    assert 'href="/agent/tickets" aria-current="page"' in listing.text  # the nav link
    assert (await agent.get(f"/agent/tickets/{ticket.id}")).status_code == 200
    assert (await agent.get("/agent/")).headers["location"] == "/agent/tickets"
    async with server.client() as admin:
        assert (await log_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        assert (await admin.get("/agent/tickets")).status_code == 200
        dashboard = await admin.get("/admin/")
        assert 'href="/agent/tickets"' in dashboard.text


# ------------------------------------------------------------------ the list
@pytest.mark.both_databases
async def test_the_list_shows_filters_searches_and_pages(server, acme, agent):
    tickets = [await new_ticket(server, acme, f"Question {i:02d}") for i in range(30)]
    await server.core.tickets.set_ticket_status(acme.id, tickets[0].id, "resolved")
    await server.core.tickets.set_ticket_status(acme.id, tickets[1].id, "closed")
    await server.core.tickets.set_ticket_status(acme.id, tickets[2].id, "pending")
    odd = await new_ticket(server, acme, "<b>Bold</b> & co", email="kim@example.com", name="")

    first = await agent.get("/agent/tickets")  # open and pending by default
    assert first.status_code == 200
    assert "29 tickets" in first.text
    rows = re.findall(r'<td><a href="/agent/tickets/(\d+)">#(\d+)</a></td>', first.text)
    assert len(rows) == 25
    # Newest activity first: the newest ticket, then the one that became pending, then the rest.
    assert [int(row[0]) for row in rows[:3]] == [odd.id, tickets[2].id, tickets[29].id]
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in first.text and "<b>Bold</b>" not in first.text
    assert "kim@example.com" in first.text
    assert "Pat Customer" in first.text and "pat@example.com" in first.text
    assert "Pending" in first.text and "Normal" in first.text and "Unassigned" in first.text
    assert "Page 1 of 2" in first.text
    assert 'href="/agent/tickets?state=open&amp;page=2" rel="next"' in first.text

    second = await agent.get("/agent/tickets", params={"page": "2"})
    assert len(re.findall(r'<td><a href="/agent/tickets/\d+">#', second.text)) == 4
    assert 'rel="prev"' in second.text and 'rel="next"' not in second.text

    closed = await agent.get("/agent/tickets", params={"state": "closed"})
    assert "2 tickets" in closed.text
    assert "Question 00" in closed.text and "Question 01" in closed.text
    assert "Resolved" in closed.text and "Closed" in closed.text
    assert "Question 05" not in closed.text

    everything = await agent.get("/agent/tickets", params={"state": "all"})
    assert "31 tickets" in everything.text

    search = await agent.get("/agent/tickets", params={"state": "all", "q": "question 0"})
    assert "10 tickets" in search.text
    assert 'value="question 0"' in search.text
    none = await agent.get("/agent/tickets", params={"q": "<nothing>"})
    assert "No tickets match “&lt;nothing&gt;”." in none.text

    # Nonsense parameters fall back to defaults rather than failing.
    odd_params = await agent.get("/agent/tickets", params={"state": "x", "page": "-3"})
    assert odd_params.status_code == 200 and "29 tickets" in odd_params.text
    far = await agent.get("/agent/tickets", params={"page": "99999999999"})
    assert far.status_code == 200

    # A reply brings an old ticket to the top.
    token, key = await ticket_form(agent, tickets[10])
    replied = await agent.post(
        f"/agent/tickets/{tickets[10].id}/reply",
        data={"csrf_token": token, "idempotency_key": key, "action": "reply", "body": "Done"},
    )
    assert replied.status_code == 303
    again = await agent.get("/agent/tickets")
    top = re.search(r'<td><a href="/agent/tickets/(\d+)">#', again.text)
    assert top and int(top.group(1)) == tickets[10].id


async def test_the_list_shows_only_this_tenants_tickets(server, acme, bravo, agent):
    await new_ticket(server, acme, "Acme question")
    await new_ticket(server, bravo, "Bravo secret")
    page = await agent.get("/agent/tickets", params={"state": "all"})
    assert "Acme question" in page.text and "Bravo secret" not in page.text


# ------------------------------------------------------------------ the ticket
async def test_the_ticket_page_shows_header_conversation_and_forms(server, acme, agent):
    ticket = await new_ticket(
        server,
        acme,
        "Cannot log in",
        description="Line one\n<script>alert(1)</script>\n  indented",
        priority="high",
        custom_fields={"plan": "Gold", "devices": ["phone", "tablet"], "urgent": True},
    )
    page = await agent.get(f"/agent/tickets/{ticket.id}")
    assert page.status_code == 200
    text = page.text
    assert f"#{ticket.number}" in text and "Cannot log in" in text
    assert "Pat Customer" in text and "pat@example.com" in text
    assert "High" in text and "Open" in text and "Unassigned" in text
    assert "phone, tablet" in text and "Gold" in text
    assert "<script>alert(1)</script>" not in text
    assert "Line one\n&lt;script&gt;alert(1)&lt;/script&gt;\n  indented" in text
    assert '<div class="reply-body">' in text
    assert 'name="action" value="reply"' in text and 'name="action" value="note"' in text
    assert "Send reply" in text and "Add internal note" in text
    for status in ("open", "pending", "resolved", "closed"):
        assert f'<option value="{status}"' in text
    assert "Me (Agent agent@acme.test)" in text
    assert "Agent boss@acme.test" in text and '<option value="none"' in text
    assert "Rating" not in text


@pytest.mark.both_databases
async def test_a_reply_is_public_and_a_note_is_internal(server, acme, agent):
    ticket = await new_ticket(server, acme)
    token, key = await ticket_form(agent, ticket)
    async with recorded_events(server.core) as events:
        sent = await agent.post(
            f"/agent/tickets/{ticket.id}/reply",
            data={
                "csrf_token": token,
                "idempotency_key": key,
                "action": "reply",
                "body": "We are on it.\r\nHang on <tight>.",
            },
        )
        assert sent.status_code == 303
        location = urlsplit(sent.headers["location"])
        assert location.path == f"/agent/tickets/{ticket.id}"
        assert location.query == "done=reply"
        await until(lambda: any(e.type == "ticket.replied" for e in events))
    public = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=False)
    assert [r.body for r in public] == [
        "It is on fire.\nPlease help.",
        "We are on it.\nHang on <tight>.",
    ]
    assert public[1].author_type == "agent" and public[1].author_name == "Agent agent@acme.test"
    assert location.fragment == f"reply-{public[1].id}"
    page = await agent.get(sent.headers["location"])
    assert flash(page.text) == "Your reply is sent."

    token, key = await ticket_form(agent, ticket)
    noted = await agent.post(
        f"/agent/tickets/{ticket.id}/reply",
        data={
            "csrf_token": token,
            "idempotency_key": key,
            "action": "note",
            "body": "Customer is on the gold plan.",
        },
    )
    assert noted.status_code == 303
    assert urlsplit(noted.headers["location"]).query == "done=note"
    public = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=False)
    assert "Customer is on the gold plan." not in [r.body for r in public]
    everything = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert everything[-1].internal and everything[-1].body == "Customer is on the gold plan."

    page = await agent.get(noted.headers["location"])
    assert flash(page.text) == "The internal note is added."
    note = re.search(
        rf'<li id="reply-{everything[-1].id}" class="([^"]+)">(.*?)</li>', page.text, re.S
    )
    assert note, "the note is not on the page"
    assert "reply-internal" in note.group(1).split()
    assert "Internal note" in note.group(2)
    assert "Customer is on the gold plan." in note.group(2)
    reply = re.search(rf'<li id="reply-{public[1].id}" class="([^"]+)">', page.text)
    assert reply and "reply-internal" not in reply.group(1).split()


async def test_a_double_submit_makes_one_reply(server, acme, agent):
    ticket = await new_ticket(server, acme)
    token, key = await ticket_form(agent, ticket)
    data = {"csrf_token": token, "idempotency_key": key, "action": "reply", "body": "Once."}
    first = await agent.post(f"/agent/tickets/{ticket.id}/reply", data=data)
    again = await agent.post(f"/agent/tickets/{ticket.id}/reply", data=data)
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    replies = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert [r.body for r in replies].count("Once.") == 1

    # Two clicks that arrive together.
    token, key = await ticket_form(agent, ticket)
    data = {"csrf_token": token, "idempotency_key": key, "action": "reply", "body": "Twice?"}
    both = await asyncio.gather(
        *(agent.post(f"/agent/tickets/{ticket.id}/reply", data=data) for _ in range(8))
    )
    assert [r.status_code for r in both] == [303] * 8
    replies = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert [r.body for r in replies].count("Twice?") == 1

    # A fresh render has a fresh key, so the same text can be sent again on purpose.
    token, key2 = await ticket_form(agent, ticket)
    assert key2 != key
    data = {"csrf_token": token, "idempotency_key": key2, "action": "reply", "body": "Once."}
    assert (await agent.post(f"/agent/tickets/{ticket.id}/reply", data=data)).status_code == 303
    replies = await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert [r.body for r in replies].count("Once.") == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "reply", "body": "   "}, "Write a message first."),
        ({"action": "note", "body": "x" * 50_001}, "Use at most 50000 characters."),
        ({"body": "Which one?"}, "Choose “Send reply” or “Add internal note”; nothing was sent."),
        ({"action": "publish", "body": "Which one?"}, "Choose “Send reply”"),
        (
            {"action": "reply", "body": "No key", "idempotency_key": ""},
            "The form was incomplete, so nothing was sent.",
        ),
    ],
)
async def test_a_bad_reply_is_refused_and_the_text_kept(server, acme, agent, data, message):
    ticket = await new_ticket(server, acme)
    token, key = await ticket_form(agent, ticket)
    response = await agent.post(
        f"/agent/tickets/{ticket.id}/reply",
        data={"csrf_token": token, "idempotency_key": key} | data,
    )
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    if data["body"].strip() and len(data["body"]) < 100:
        assert f"\n{data['body']}</textarea>" in response.text
    assert (
        len(await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)) == 1
    )


async def test_a_status_change_emits_the_core_event_and_shows(server, acme, agent):
    ticket = await new_ticket(server, acme)
    token, _ = await ticket_form(agent, ticket)
    me = await server.core.tenants.get_agent_by_email(acme.id, AGENT_EMAIL)
    async with recorded_events(server.core) as events:
        response = await agent.post(
            f"/agent/tickets/{ticket.id}/status", data={"csrf_token": token, "status": "resolved"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/agent/tickets/{ticket.id}?done=status"
        await until(lambda: any(e.type == "ticket.status_changed" for e in events))
    event = next(e for e in events if e.type == "ticket.status_changed")
    assert event.tenant_id == acme.id
    assert event.data == {
        "ticket_id": ticket.id,
        "status": "resolved",
        "previous": "open",
        "agent_id": me.id,
    }
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).status == "resolved"
    page = await agent.get(response.headers["location"])
    assert flash(page.text) == "The status is now Resolved."
    assert '<option value="resolved" selected>' in page.text
    closed = await agent.get("/agent/tickets", params={"state": "closed"})
    assert "Printer on fire" in closed.text

    bad = await agent.post(
        f"/agent/tickets/{ticket.id}/status", data={"csrf_token": token, "status": "deleted"}
    )
    assert bad.status_code == 400
    assert "Choose a status from the list." in bad.text
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).status == "resolved"


async def test_a_rating_shows_in_the_header(server, acme, agent):
    ticket = await new_ticket(server, acme)
    await server.core.tickets.set_ticket_status(acme.id, ticket.id, "resolved")
    await server.core.tickets.rate_ticket(acme.id, ticket.id, good=False, comment="Slow <reply>")
    page = await agent.get(f"/agent/tickets/{ticket.id}")
    assert "Rating" in page.text and "Bad" in page.text
    assert "Slow &lt;reply&gt;" in page.text


async def test_assign_to_me_to_another_agent_and_to_nobody(server, acme, bravo, agent):
    ticket = await new_ticket(server, acme)
    me = await server.core.tenants.get_agent_by_email(acme.id, AGENT_EMAIL)
    boss = await server.core.tenants.get_agent_by_email(acme.id, ADMIN_EMAIL)
    stranger = await server.core.tenants.get_agent_by_email(bravo.id, OTHER_EMAIL)
    token, _ = await ticket_form(agent, ticket)
    url = f"/agent/tickets/{ticket.id}/assign"

    response = await agent.post(url, data={"csrf_token": token, "assignee": "me"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/agent/tickets/{ticket.id}?done=assign"
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).assignee_agent_id == me.id
    page = await agent.get(response.headers["location"])
    assert flash(page.text) == "The ticket is assigned to Agent agent@acme.test."

    response = await agent.post(url, data={"csrf_token": token, "assignee": str(boss.id)})
    assert response.status_code == 303
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).assignee_agent_id == boss.id
    listing = await agent.get("/agent/tickets")
    assert "Agent boss@acme.test" in listing.text

    response = await agent.post(url, data={"csrf_token": token, "assignee": "none"})
    assert response.status_code == 303
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).assignee_agent_id is None
    page = await agent.get(response.headers["location"])
    assert flash(page.text) == "The ticket is unassigned."

    for bad in (str(stranger.id), "999999", "x", ""):
        response = await agent.post(url, data={"csrf_token": token, "assignee": bad})
        assert response.status_code == 400, bad
        assert "Choose an agent from the list." in response.text
    assert (await server.core.tickets.get_ticket(acme.id, ticket.id)).assignee_agent_id is None


# ------------------------------------------------------------------ tenants and ids
async def test_another_tenants_ticket_is_a_404(server, acme, bravo, bravo_agent):
    ticket = await new_ticket(server, acme, "Acme only")
    token = hidden(TOKEN_RE, (await bravo_agent.get("/agent/tickets")).text)
    for path in (f"/agent/tickets/{ticket.id}", "/agent/tickets/999999", f"/agent/tickets/{2**63}"):
        response = await bravo_agent.get(path)
        assert response.status_code == 404, path
        assert "Acme only" not in response.text
    for action, data in [
        ("reply", {"body": "Hi", "action": "reply", "idempotency_key": "k" * 20}),
        ("status", {"status": "closed"}),
        ("assign", {"assignee": "me"}),
    ]:
        response = await bravo_agent.post(
            f"/agent/tickets/{ticket.id}/{action}", data=data | {"csrf_token": token}
        )
        assert response.status_code == 404, action
    after = await server.core.tickets.get_ticket(acme.id, ticket.id)
    assert (after.status, after.assignee_agent_id) == ("open", None)
    assert (
        len(await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)) == 1
    )


async def test_a_session_of_one_tenant_does_not_open_anothers_console(server, acme, bravo, agent):
    response = await agent.get("/agent/tickets", headers={"host": "bravo.portal.test"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login")


# ------------------------------------------------------------------ attachments
async def test_attachments_are_downloads_for_agents_of_the_tenant_only(
    server, settings, acme, bravo, agent, bravo_agent
):
    store = AttachmentStore(settings.data_path / "attachments")
    saved = store.save(acme.id, "notes <1>.txt", b"secret notes\n")
    ticket = await new_ticket(server, acme, "With a file", attachments=(saved,))
    [first] = await server.core.tickets.list_replies(acme.id, ticket.id)
    [file] = first.attachments

    page = await agent.get(f"/agent/tickets/{ticket.id}")
    assert f'href="/agent/attachments/{file.id}"' in page.text
    assert html.escape(file.filename) in page.text

    response = await agent.get(f"/agent/attachments/{file.id}")
    assert response.status_code == 200
    assert response.content == b"secret notes\n"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "private, no-store"

    # An agent of another tenant, on their own host: as if it did not exist.
    assert (await bravo_agent.get(f"/agent/attachments/{file.id}")).status_code == 404
    assert (await agent.get("/agent/attachments/999999")).status_code == 404
    # Signed out: to the login page, not the file.
    async with server.client() as anonymous:
        response = await anonymous.get(f"/agent/attachments/{file.id}")
        assert response.status_code == 303 and response.content == b""


async def test_an_attachment_whose_file_is_gone_is_a_404(server, settings, acme, agent):
    store = AttachmentStore(settings.data_path / "attachments")
    saved = store.save(acme.id, "gone.txt", b"soon gone")
    ticket = await new_ticket(server, acme, "Lost file", attachments=(saved,))
    [first] = await server.core.tickets.list_replies(acme.id, ticket.id)
    store.path(acme.id, saved.storage_key).unlink()
    assert (await agent.get(f"/agent/attachments/{first.attachments[0].id}")).status_code == 404


# ------------------------------------------------------------------ CSRF
async def test_posts_without_a_valid_csrf_token_are_refused(server, acme, agent):
    ticket = await new_ticket(server, acme)
    _, key = await ticket_form(agent, ticket)
    for action, data in [
        ("reply", {"body": "Hi", "action": "reply", "idempotency_key": key}),
        ("status", {"status": "closed"}),
        ("assign", {"assignee": "me"}),
    ]:
        url = f"/agent/tickets/{ticket.id}/{action}"
        missing = await agent.post(url, data=data)
        assert missing.status_code == 403, action
        assert "Reload the page and try again." in missing.text
        forged = await agent.post(url, data=data | {"csrf_token": "forged.token"})
        assert forged.status_code == 403, action
    after = await server.core.tickets.get_ticket(acme.id, ticket.id)
    assert (after.status, after.assignee_agent_id) == ("open", None)
    assert (
        len(await server.core.tickets.list_replies(acme.id, ticket.id, include_internal=True)) == 1
    )


# ------------------------------------------------------------------ language
async def test_the_console_speaks_the_agents_language(server, acme, agent):
    ticket = await new_ticket(server, acme)
    page = await agent.get(f"/agent/tickets/{ticket.id}", headers={"accept-language": "nb"})
    assert page.status_code == 200
    assert 'lang="nb"' in page.text
    assert "Send reply" not in page.text and "Add internal note" not in page.text
