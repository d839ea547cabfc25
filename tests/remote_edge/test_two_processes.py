"""The whole customer flow through an edge (`portal serve`) on a remote core (`portal core`), two
real processes: the agent works at the core, the customer and the visitor at the edge, and what
the agent does reaches the edge by signed webhook, or from the events feed after an outage.

The tests share one pair of processes and run in order; the last one restarts the edge.
"""

from __future__ import annotations

import html
import json
import time
import uuid
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from portal.core.contract import EVENTS_RESUMED, ArticleDraft, Event, NotFound
from portal.core.remote import CoreClient, RemoteCore
from tests.customer.conftest import csrf_from, key_from, link_path, mail_text
from tests.messenger.conftest import client_id, open_ws
from tests.polling import until
from tests.processes import free_port
from tests.remote_edge.conftest import DEADLINE_S, HOST, RemoteEdge

CUSTOMER = "kari@example.com"


async def core_post(
    remote: RemoteEdge, path: str, body: dict[str, Any], verb: str = "POST"
) -> dict[str, Any]:
    """A write through the core API, as a help desk's agent side makes it."""
    async with remote.core_client() as core:
        response = await core.request(
            verb, path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
    assert response.status_code in (200, 201), response.text
    return response.json() if response.content else {}


async def agent_reply(remote: RemoteEdge, ticket_id: int, body: str) -> dict[str, Any]:
    draft = {"author_type": "agent", "author_id": remote.seeded.agent_id, "body": body}
    return await core_post(
        remote, f"/core/v1/tickets/{ticket_id}/replies", {**draft, "internal": False}
    )


async def mail_saying(remote: RemoteEdge, text: str) -> Message:
    """The mail to the customer whose text holds `text`, once it arrived."""

    def found() -> Message | None:
        for message in remote.inbox.messages:
            if message["To"] == CUSTOMER and text in mail_text(message):
                return message
        return None

    found_message: Message = await until(found, f"a mail to the customer saying {text!r}")
    return found_message


async def submit_contact_form(remote: RemoteEdge, client: httpx.AsyncClient, subject: str) -> int:
    """Send the contact form through the edge's API; the new ticket's id at the core."""
    form_id = remote.seeded.form.id
    token = (await client.get(f"/api/forms/{form_id}")).json()["form_token"]
    values = {
        "name": "Kari Nordmann",
        "email": CUSTOMER,
        "subject": subject,
        "description": "It stopped this morning.",
        "form_token": token,
        "idempotency_key": uuid.uuid4().hex,
    }
    sent = await client.post(f"/api/forms/{form_id}/submissions", json=values)
    assert sent.status_code == 201, sent.text
    number = sent.json()["ticket"]["number"]
    async with remote.core_client() as core:
        page = (await core.get("/core/v1/tickets", params={"limit": "100"})).json()
    return next(int(t["id"]) for t in page["tickets"] if t["number"] == number)


async def sign_in(client: httpx.AsyncClient, remote: RemoteEdge) -> None:
    """Ask the edge for a magic link, follow it from the mail, confirm."""
    seen = sum(1 for m in remote.inbox.messages if m["To"] == CUSTOMER)
    asked = await client.post("/portal/sign-in", data={"email": CUSTOMER})
    assert asked.status_code == 200, asked.text
    mine = await until(
        lambda: [m for m in remote.inbox.messages if m["To"] == CUSTOMER][seen:],
        "the sign-in mail",
    )
    path = link_path(mine[0])
    assert (await client.get(path)).status_code == 200
    confirmed = await client.post(path)
    assert confirmed.status_code == 303, confirmed.text


async def test_the_customer_flow_through_the_edge(remote_edge: RemoteEdge) -> None:
    remote = remote_edge
    async with remote.edge_client() as client:
        ticket_id = await submit_contact_form(remote, client, "Printer offline")

        # The ticket is in the core, as its API shows it.
        async with remote.core_client() as core:
            stored = (await core.get(f"/core/v1/tickets/{ticket_id}")).json()
        assert stored["subject"] == "Printer offline"
        assert stored["requester_email"] == CUSTOMER

        await sign_in(client, remote)
        listed = await client.get("/portal/tickets")
        assert "Printer offline" in listed.text

        page = await client.get(f"/portal/tickets/{ticket_id}")
        form = {
            "csrf_token": csrf_from(page.text),
            "idempotency_key": key_from(page.text),
            "body": "It shows error E42 & blinks.",
        }
        replied = await client.post(f"/portal/tickets/{ticket_id}/replies", data=form)
        assert replied.status_code == 303, replied.text
        async with remote.core_client() as core:
            replies = (await core.get(f"/core/v1/tickets/{ticket_id}/replies")).json()
        # The description is the ticket's first message, the customer's reply the next.
        assert [r["body"] for r in replies] == [
            "It stopped this morning.",
            "It shows error E42 & blinks.",
        ]

        # The agent answers at the core; the edge hears of it by webhook and mails the customer.
        await agent_reply(remote, ticket_id, "Please restart it and tell us.")
        mail = await mail_saying(remote, "Please restart it and tell us.")
        assert "Printer offline" in mail["Subject"]
        page = await client.get(f"/portal/tickets/{ticket_id}")
        assert "Please restart it and tell us." in page.text

        # Resolved at the core, the customer rates it at the edge; the rating is the core's.
        await core_post(
            remote, f"/core/v1/tickets/{ticket_id}/status", {"status": "resolved"}, "PUT"
        )
        rated = await client.post(
            f"/portal/tickets/{ticket_id}/rating",
            data={"csrf_token": csrf_from(page.text), "good": "1", "comment": "Quick, thanks"},
        )
        assert rated.status_code == 303, rated.text
        async with remote.core_client() as core:
            rating = (await core.get(f"/core/v1/tickets/{ticket_id}/rating")).json()
        assert rating["good"] is True
        assert rating["comment"] == "Quick, thanks"


async def test_an_agent_chat_message_at_the_core_reaches_the_visitor(
    remote_edge: RemoteEdge,
) -> None:
    remote = remote_edge
    async with remote.edge_client() as client:
        token = (await client.post("/messenger/token", json={})).json()["token"]
    ws = await open_ws(remote.edge.url, "/messenger/ws", host=HOST)
    try:
        await ws.send("hello", token=token, last_id=0)
        await ws.expect("ready")
        await ws.send("start", client_id=client_id(), body="Is anyone there?")
        conversation_id = (await ws.expect("started"))["conversation"]["id"]
        await ws.expect("message", timeout=10)  # the visitor's own first message

        async with remote.core_client() as core:
            stored = await core.get(f"/core/v1/chat/conversations/{conversation_id}/messages")
        assert [m["body"] for m in stored.json()] == ["Is anyone there?"]

        draft = {
            "author_type": "agent",
            "author_id": remote.seeded.agent_id,
            "author_name": "Ada Agent",
            "body": "Hi! How can I help?",
            "client_id": f"agent-{uuid.uuid4().hex}",
        }
        await core_post(remote, f"/core/v1/chat/conversations/{conversation_id}/messages", draft)
        frame = await ws.expect("message", timeout=DEADLINE_S)
        assert frame["message"]["body"] == "Hi! How can I help?"
        assert frame["message"]["author_type"] == "agent"
        bodies = [m["body"] for m in ws.messages(conversation_id)]
        assert bodies == ["Is anyone there?", "Hi! How can I help?"]  # each once, in order
    finally:
        await ws.close()


async def test_a_changed_article_is_not_served_stale_from_the_edge(
    remote_edge: RemoteEdge,
) -> None:
    """The edge keeps the article (its pages and the remote core's read cache); the core's
    `article.changed`, by webhook, drops both, well before the cache would expire."""
    remote = remote_edge
    article = remote.seeded.article
    path = f"/kb/en/articles/{article.slug}"
    async with remote.edge_client() as client:
        assert "How to reset your password" in (await client.get(path)).text
        before = remote.core_requests("/kb/articles/by-slug/en/reset-password")
        assert "How to reset your password" in (await client.get(path)).text
        assert remote.core_requests("/kb/articles/by-slug/en/reset-password") == before

        draft = {
            "language": "en",
            "slug": article.slug,
            "title": "Resetting a forgotten password",
            "body_md": "Click *Forgot password*.",
            "published": True,
            "category_id": article.category_id,
        }
        await core_post(remote, f"/core/v1/kb/articles/{article.id}", draft, "PUT")

        async def shows_new_title() -> bool:
            page = await client.get(path)
            return "Resetting a forgotten password" in html.unescape(page.text)

        await until(shows_new_title, "the edge to show the article's new title")


def counted_remote_core(remote: RemoteEdge, cache_ttl: float) -> tuple[RemoteCore, list[str]]:
    """A RemoteCore on the running core, and the paths of the requests it sends, as sent."""
    client = CoreClient(remote.core.url, remote.key)
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.url.path)

    client.http.event_hooks["request"].append(record)
    return RemoteCore(remote.core.url, remote.key, client=client, cache_ttl=cache_ttl), sent


async def test_the_remote_cores_reads_are_kept_and_dropped(remote_edge: RemoteEdge) -> None:
    """A read kept is not asked of the core again until an event or a write through this edge
    says it changed; writes are never kept."""
    remote = remote_edge
    tenant_id = remote.tenant.id
    by_slug = "/core/v1/kb/articles/by-slug/en/reset-password"
    missing = "/core/v1/kb/articles/by-slug/en/no-such-article"
    tenant_path = "/core/v1/tenants/acme"
    edge, sent = counted_remote_core(remote, cache_ttl=30)
    await edge.start()
    try:
        for _ in range(3):
            article = await edge.kb.get_article_by_slug(tenant_id, "en", "reset-password")
            assert (await edge.tenants.get_tenant("acme")).id == tenant_id
            with pytest.raises(NotFound):
                await edge.kb.get_article_by_slug(tenant_id, "en", "no-such-article")
        assert (sent.count(by_slug), sent.count(missing), sent.count(tenant_path)) == (1, 1, 1)

        edge.bus.publish(Event("article.changed", tenant_id, {"article_id": article.id}))
        await edge.kb.get_article_by_slug(tenant_id, "en", "reset-password")
        await edge.tenants.get_tenant("acme")  # another domain's reads stay
        assert (sent.count(by_slug), sent.count(tenant_path)) == (2, 1)

        # A write through this edge drops its domain's reads at once, event or not.
        draft = ArticleDraft(
            "en", "reset-password", "Passwords, reset", article.body_md,
            category_id=article.category_id,
        )  # fmt: skip
        await edge.kb.update_article(tenant_id, article.id, draft)
        await edge.kb.update_article(tenant_id, article.id, draft)
        assert sent.count(f"/core/v1/kb/articles/{article.id}") == 2  # writes: never kept
        fresh = await edge.kb.get_article_by_slug(tenant_id, "en", "reset-password")
        assert fresh.title == "Passwords, reset"
        assert sent.count(by_slug) == 3

        edge.bus.publish(Event(EVENTS_RESUMED, 0))  # events may have gone unheard: all go
        await edge.tenants.get_tenant("acme")
        assert sent.count(tenant_path) == 2
    finally:
        await edge.close()

    uncached, sent = counted_remote_core(remote, cache_ttl=0)
    await uncached.start()
    try:
        for _ in range(2):
            await uncached.kb.get_article_by_slug(tenant_id, "en", "reset-password")
        assert sent.count(by_slug) == 2
    finally:
        await uncached.close()


async def test_the_core_announces_chat_messages_and_form_changes(remote_edge: RemoteEdge) -> None:
    """What only an edge elsewhere needs to hear is on the core's feed (and so its webhooks)."""
    remote = remote_edge
    async with remote.core_client() as core:
        start = (await core.get("/core/v1/events", params={"limit": "0"})).json()["next"]
    form = await core_post(remote, "/core/v1/forms", {"title": "Returns"})
    async with remote.core_client() as core:
        page = (await core.get("/core/v1/events", params={"after": start})).json()
    changed = [e for e in page["events"] if e["type"] == "form.changed"]
    assert [e["data"]["form_id"] for e in changed] == [form["id"]]


def _signed(secret: str, event_id: str, body: bytes, timestamp: float) -> dict[str, str]:
    moment = datetime.fromtimestamp(timestamp, UTC)
    signature = Webhook(secret).sign(event_id, moment, body.decode())
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


async def test_the_edge_refuses_forged_stale_and_replayed_webhooks(
    remote_edge: RemoteEdge,
) -> None:
    remote = remote_edge
    async with remote.core_client() as core:
        now_cursor = (await core.get("/core/v1/events", params={"limit": "0"})).json()["next"]
    event_id = f"evt_test_{uuid.uuid4().hex}"
    envelope = {
        "id": event_id,
        "type": "test.ping",
        "time": "2026-01-01T00:00:00Z",
        "tenant_id": remote.tenant.id,
        "data": {},
        "cursor": now_cursor,  # where the feed is: taking it in moves the edge's cursor nowhere
        "previous": None,
    }
    body = json.dumps(envelope).encode()
    url = remote.edge.url + "/_core/events"
    async with httpx.AsyncClient(timeout=10) as client:
        forged = _signed("whsec_" + "QUJD" * 8, event_id, body, time.time())
        bad = await client.post(url, content=body, headers=forged)
        assert bad.status_code == 401, bad.text
        assert "webhook refused" in bad.json()["error"]

        stale = await client.post(
            url,
            content=body,
            headers=_signed(remote.webhook_secret, event_id, body, time.time() - 600),
        )
        assert stale.status_code == 401, stale.text

        fresh = _signed(remote.webhook_secret, event_id, body, time.time())
        first = await client.post(url, content=body, headers=fresh)
        assert (first.status_code, first.json()) == (200, {"status": "accepted"})
        replayed = await client.post(url, content=body, headers=fresh)
        # A replay does nothing; 200 so that a sender does not retry it forever (receiver.py).
        assert (replayed.status_code, replayed.json()) == (200, {"status": "duplicate"})


async def test_events_missed_while_the_edge_was_down_are_caught_up_from_the_feed(
    remote_edge: RemoteEdge,
) -> None:
    """The edge comes back on another port, so the core's webhooks cannot reach it: what it
    learns of the reply made meanwhile comes from the events feed."""
    remote = remote_edge
    async with remote.edge_client() as client:
        ticket_id = await submit_contact_form(remote, client, "Scanner jammed")
    remote.edge.stop()
    await agent_reply(remote, ticket_id, "We sent a technician while you were away.")
    remote.edge.port = free_port()
    remote.edge.env["PORTAL_PORT"] = str(remote.edge.port)
    remote.edge.start()
    mail = await mail_saying(remote, "We sent a technician while you were away.")
    assert "Scanner jammed" in mail["Subject"]
    async with remote.edge_client() as client:
        await sign_in(client, remote)
        page = await client.get(f"/portal/tickets/{ticket_id}")
    assert "We sent a technician while you were away." in page.text
