"""The core killed mid-traffic, then restarted: two real processes (`portal core`, `portal serve`)
and customers over HTTP.

Several customers keep sending the contact form (the JSON API) and replying to their own ticket
in the portal (signed in by magic link), and a visitor keeps chatting over the messenger's
websocket, while the core process is killed (SIGKILL, no shutdown) and, once some writes were
answered as pending, started again on the same port and database. No customer may see an error
meanwhile; once the edge's outbox is empty, every write is at the core exactly once, and each
ticket's replies and the conversation's messages are in the order they were sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.customer.conftest import csrf_from, key_from, link_path
from tests.messenger.conftest import Ws, client_id, open_ws
from tests.polling import until
from tests.remote_edge.conftest import HOST, RemoteEdge, remote_edge_processes

CUSTOMERS = 4
# Answers that must have come before the kill, before the restart, and after it.
# A visitor's message is acked once durable on the edge ("pending"), the core up or not.
BEFORE_KILL = {"form 201": 1, "reply confirmed": 1, "chat ack pending": 1}
WHILE_DOWN = {"form 202": 2, "reply pending": 2, "chat ack pending": 1}
AFTER_RESTART = {"form 201": CUSTOMERS, "reply confirmed": CUSTOMERS, "chat ack pending": 2}
DRAIN_DEADLINE_S = 30.0
# Every customer here comes from 127.0.0.1: the per-address form limit would stop them at once.
TENANT_SETTINGS = {"form_ip_limit_per_minute": 100_000, "form_tenant_limit_per_minute": 100_000}
# Retries come at least every second, so the drain after the restart waits on no long backoff.
EDGE_ENV = {"PORTAL_OUTBOX_RETRY_MAX_S": "1"}

# Under the socket's limit of 10 frames a second: a visitor typing fast, not a flood.
CHAT_PACE_S = 0.15

FORM_ANSWERS = {201, 202}  # the ticket, or "received" with a local reference
REPLY_ANSWERS = {303}  # back to the ticket page


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEdge]:
    with remote_edge_processes(
        tmp_path_factory.mktemp("core-killed"),
        tenant_settings=TENANT_SETTINGS,
        extra_edge_env=EDGE_ENV,
    ) as made:
        yield made


@dataclass
class Customer:
    """One customer's browser (its own cookies) and what it sent, in order."""

    name: str
    client: httpx.AsyncClient
    form_token: str = ""
    ticket_id: int = 0  # the ticket this customer replies to
    subjects: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    page: str = ""  # the ticket page last shown (its CSRF token and next idempotency key)

    @property
    def email(self) -> str:
        return f"{self.name}@example.com"


@dataclass
class Traffic:
    """What every customer saw, counted across them."""

    # "form 202", "reply 303", "reply pending", "chat ack pending", "chat ack", ...
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # what no customer may see
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, wanted: dict[str, int], since: Counter[str] | None = None) -> bool:
        """Whether at least `wanted` of each answer came (after `since`), or something failed."""
        came = self.answers - (since or Counter())
        return bool(self.failures) or all(came[k] >= n for k, n in wanted.items())


async def send_form(remote: RemoteEdge, customer: Customer, traffic: Traffic, n: int) -> None:
    subject = f"{customer.name} request {n}"
    sent = await customer.client.post(
        f"/api/forms/{remote.seeded.form.id}/submissions",
        json={
            "name": customer.name.title(),
            "email": customer.email,
            "subject": subject,
            "description": f"Details of {subject}.",
            "form_token": customer.form_token,
            "idempotency_key": uuid.uuid4().hex,
        },
    )
    traffic.answers[f"form {sent.status_code}"] += 1
    if sent.status_code not in FORM_ANSWERS:
        traffic.failures.append(f"form {subject!r}: {sent.status_code} {sent.text[:300]}")
        return
    customer.subjects.append(subject)  # a 2xx: the customer takes it as received


async def send_reply(customer: Customer, traffic: Traffic, n: int) -> None:
    """Reply from the ticket page last shown, then follow the redirect as a browser does."""
    body = f"{customer.name} reply {n}"
    path = f"/portal/tickets/{customer.ticket_id}"
    form = {
        "csrf_token": csrf_from(customer.page),
        "idempotency_key": key_from(customer.page),
        "body": body,
    }
    sent = await customer.client.post(f"{path}/replies", data=form)
    traffic.answers[f"reply {sent.status_code}"] += 1
    if sent.status_code not in REPLY_ANSWERS:
        traffic.failures.append(f"reply {body!r}: {sent.status_code} {sent.text[:300]}")
        return
    customer.replies.append(body)
    # The reply's anchor: the core's id, or minus the outbox row's while it is pending.
    pending = sent.headers["location"].split("#reply-")[-1].startswith("-")
    traffic.answers["reply pending" if pending else "reply confirmed"] += 1
    shown = await customer.client.get(sent.headers["location"].split("#")[0])
    traffic.answers[f"ticket page {shown.status_code}"] += 1
    # A pending reply is shown as sending. (One the core took just before it died may be
    # missing until it is back: the page then comes from the last answers the edge kept.)
    if shown.status_code != 200 or (pending and body not in shown.text):
        traffic.failures.append(f"page after {body!r}: {shown.status_code} {shown.text[:300]}")
        return
    customer.page = shown.text


async def keep_writing(remote: RemoteEdge, customer: Customer, traffic: Traffic) -> None:
    """A form, then a reply, again and again, until told to stop (or something failed)."""
    n = 0
    while not traffic.stop.is_set() and not traffic.failures:
        n += 1
        try:
            await send_form(remote, customer, traffic, n)
            await send_reply(customer, traffic, n)
        except httpx.HTTPError as error:  # the edge itself must never drop a customer
            traffic.failures.append(f"{customer.name}: {type(error).__name__} {error}")


@dataclass
class Visitor:
    """A visitor's chat: the socket, its conversation and the messages sent, in order."""

    ws: Ws
    conversation_id: int
    bodies: list[str]


async def start_chat(remote: RemoteEdge) -> Visitor:
    """While the core is up (a chat cannot start without it): the conversation's first message."""
    async with remote.edge_client() as client:
        token = (await client.post("/messenger/token", json={})).json()["token"]
    ws = await open_ws(remote.edge.url, "/messenger/ws", host=HOST)
    await ws.send("hello", token=token, last_id=0)
    await ws.expect("ready")
    await ws.send("start", client_id=client_id(), body="chat 0")
    conversation_id = (await ws.expect("started"))["conversation"]["id"]
    return Visitor(ws, conversation_id, ["chat 0"])


async def keep_chatting(visitor: Visitor, traffic: Traffic) -> None:
    """A message, its ack (stored, or durable on the edge and pending), again and again."""
    n = 0
    while not traffic.stop.is_set() and not traffic.failures:
        n += 1
        cid, body = client_id(), f"chat {n}"
        await visitor.ws.send(
            "message", conversation_id=visitor.conversation_id, client_id=cid, body=body
        )
        try:
            ack = await visitor.ws.expect("ack", timeout=10, client_id=cid)
        except AssertionError as error:
            errors = [f for f in visitor.ws.frames if f["type"] == "error"]
            traffic.failures.append(f"chat {body!r}: no ack ({error}); errors: {errors}")
            return
        visitor.bodies.append(body)
        traffic.answers["chat ack pending" if ack.get("pending") else "chat ack"] += 1
        await asyncio.sleep(CHAT_PACE_S)


async def first_ticket(remote: RemoteEdge, customer: Customer) -> None:
    """While the core is up: the customer's form token, a ticket, and a signed-in session."""
    client = customer.client
    form_id = remote.seeded.form.id
    customer.form_token = (await client.get(f"/api/forms/{form_id}")).json()["form_token"]
    sent = await client.post(
        f"/api/forms/{form_id}/submissions",
        json={
            "name": customer.name.title(),
            "email": customer.email,
            "subject": f"{customer.name} first request",
            "description": "The first one.",
            "form_token": customer.form_token,
            "idempotency_key": uuid.uuid4().hex,
        },
    )
    assert sent.status_code == 201, sent.text
    number = sent.json()["ticket"]["number"]
    async with remote.core_client() as core:
        page = (await core.get("/core/v1/tickets", params={"query": customer.name})).json()
    customer.ticket_id = next(int(t["id"]) for t in page["tickets"] if t["number"] == number)

    asked = await client.post("/portal/sign-in", data={"email": customer.email})
    assert asked.status_code == 200, asked.text
    mail = await until(
        lambda: [m for m in remote.inbox.messages if m["To"] == customer.email],
        f"the sign-in mail to {customer.email}",
    )
    link = link_path(mail[0])
    assert (await client.get(link)).status_code == 200
    confirmed = await client.post(link)
    assert confirmed.status_code == 303, confirmed.text
    shown = await client.get(f"/portal/tickets/{customer.ticket_id}")
    assert shown.status_code == 200, shown.text
    customer.page = shown.text


async def readiness(remote: RemoteEdge) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=remote.edge.url, timeout=10) as client:
        answer: dict[str, Any] = (await client.get("/readyz")).json()
    return answer


async def drained(remote: RemoteEdge) -> bool:
    ready = await readiness(remote)
    return bool(ready["ready"] and ready["outbox"]["depth"] == 0)


async def core_tickets(remote: RemoteEdge) -> list[dict[str, Any]]:
    """Every ticket at the core, through its API."""
    tickets: list[dict[str, Any]] = []
    async with remote.core_client() as core:
        while True:
            params = {"limit": "100", "offset": str(len(tickets))}
            page = (await core.get("/core/v1/tickets", params=params)).json()
            tickets += page["tickets"]
            if not page["tickets"] or len(tickets) >= page["total"]:
                return tickets


async def core_replies(remote: RemoteEdge, ticket_id: int) -> list[str]:
    async with remote.core_client() as core:
        replies = (await core.get(f"/core/v1/tickets/{ticket_id}/replies")).json()
    return [reply["body"] for reply in replies]


async def core_messages(remote: RemoteEdge, conversation_id: int) -> list[str]:
    async with remote.core_client() as core:
        path = f"/core/v1/chat/conversations/{conversation_id}/messages"
        messages = (await core.get(path)).json()
    return [m["body"] for m in messages if m["author_type"] == "visitor"]


async def test_the_core_killed_mid_traffic_loses_and_doubles_nothing(
    processes: RemoteEdge,
) -> None:
    remote = processes
    customers = [
        Customer(f"customer{n}", remote.edge_client(follow_redirects=False))
        for n in range(CUSTOMERS)
    ]
    traffic = Traffic()
    visitor = await start_chat(remote)
    try:
        await asyncio.gather(*(first_ticket(remote, customer) for customer in customers))
        writers = [
            asyncio.create_task(keep_writing(remote, customer, traffic)) for customer in customers
        ]
        writers.append(asyncio.create_task(keep_chatting(visitor, traffic)))
        try:
            await until(lambda: traffic.saw(BEFORE_KILL), "writes confirmed by the core")
            remote.core.kill()
            await until(lambda: traffic.saw(WHILE_DOWN), "writes answered as pending")
            before_restart = Counter(traffic.answers)
            await asyncio.to_thread(remote.core.start)  # the same port and database
            await until(
                lambda: traffic.saw(AFTER_RESTART, since=before_restart),
                "writes confirmed by the core again",
                timeout=DRAIN_DEADLINE_S,
            )
            # The count above is across customers: a slow one (its form waiting out a retry)
            # may not have replied again yet, and each must have, for the checks below.
            await until(
                lambda: traffic.failures or all(len(c.replies) >= 2 for c in customers),
                "every customer's second reply",
                timeout=DRAIN_DEADLINE_S,
            )
        finally:
            traffic.stop.set()
            await asyncio.gather(*writers)
        assert not traffic.failures, (traffic.failures, traffic.answers)
        await until(lambda: drained(remote), "the edge's outbox to drain", DRAIN_DEADLINE_S)
        errors = [f for f in visitor.ws.frames if f["type"] == "error"]
        assert not errors, errors
    finally:
        await visitor.ws.close()
        for customer in customers:
            await customer.client.aclose()

    tickets = Counter(ticket["subject"] for ticket in await core_tickets(remote))
    for customer in customers:
        sent = [f"{customer.name} first request", *customer.subjects]
        assert {subject: tickets[subject] for subject in sent} == dict.fromkeys(sent, 1)
        assert len(customer.replies) >= 2, customer  # the test replied before and after the kill
        # The description is the ticket's first reply; then every reply once, as sent.
        expected = ["The first one.", *customer.replies]
        assert await core_replies(remote, customer.ticket_id) == expected
    assert sum(tickets.values()) == CUSTOMERS + sum(len(c.subjects) for c in customers)
    assert await core_messages(remote, visitor.conversation_id) == visitor.bodies
    assert traffic.answers["form 202"] > 0 and traffic.answers["form 201"] > 0, traffic.answers
