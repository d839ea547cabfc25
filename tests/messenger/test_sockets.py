"""The messenger over real uvicorn and real websockets: send, ack, dedupe, resume, order, roles."""

from __future__ import annotations

import asyncio

import pytest

from tests.core.test_ticket_writes import counted
from tests.messenger.conftest import Chat, client_id

pytestmark = pytest.mark.live_server


@pytest.mark.both_databases
async def test_message_is_acknowledged_with_its_stored_id_and_a_resend_stores_nothing(chat: Chat):
    visitor, ready = await chat.visitor()
    assert ready["role"] == "visitor" and ready["conversations"] == []
    conversation_id = await chat.start(visitor, "My printer is on fire")
    first = await visitor.expect("message")
    assert first["message"]["body"] == "My printer is on fire"

    await visitor.send("message", conversation_id=conversation_id, client_id="same", body="Hi!")
    ack = await visitor.expect("ack", client_id="same")
    await visitor.send("message", conversation_id=conversation_id, client_id="same", body="Hi!")
    again = await visitor.expect("ack", client_id="same")

    assert again["id"] == ack["id"] > first["message"]["id"]
    stored = await chat.server.core.chat.chat_messages(chat.tenant.id, conversation_id)
    assert [m.body for m in stored] == ["My printer is on fire", "Hi!"]


@pytest.mark.both_databases
async def test_visitor_and_agent_talk_and_the_agent_name_reaches_the_visitor(chat: Chat):
    agent, ready = await chat.agent()
    assert ready["agent"]["name"] == "Ada Agent"
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "Question about invoices", name="Pat")

    inbox = await agent.expect("inbox")
    (listed,) = inbox["conversations"]
    assert listed["id"] == conversation_id and listed["status"] == "waiting"
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    seen = await agent.expect("message")
    assert seen["message"]["author_name"] == "Pat"
    await agent.expect("caught_up", conversation_id=conversation_id)

    await agent.send("accept", conversation_id=conversation_id)
    changed = await visitor.expect("conversation")
    assert changed["conversation"]["assignee_name"] == "Ada Agent"
    assert "visitor_email" not in changed["conversation"]

    await agent.send(
        "message", conversation_id=conversation_id, client_id=client_id(), body="<b>Hello</b>"
    )
    reply = await visitor.expect("message")
    assert reply["message"]["author_type"] == "agent"
    assert reply["message"]["author_name"] == "Ada Agent"
    assert reply["message"]["body"] == "<b>Hello</b>"  # the client renders it as text


@pytest.mark.both_databases
async def test_reconnecting_visitor_gets_everything_after_its_last_id_once_in_order(chat: Chat):
    token = await chat.token()
    visitor, _ = await chat.visitor(token)
    conversation_id = await chat.start(visitor, "one")
    await visitor.expect("message")
    for body in ("two", "three"):
        await visitor.send("message", conversation_id=conversation_id, client_id=body, body=body)
        await visitor.expect("ack", client_id=body)
    last_seen = visitor.messages(conversation_id)[-1]["id"]
    await visitor.close()

    # While the visitor is away, the agent answers twice.
    agent, _ = await chat.agent()
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    for body in ("four", "five"):
        await agent.send("message", conversation_id=conversation_id, client_id=body, body=body)
        await agent.expect("ack", client_id=body)

    again, ready = await chat.visitor(token, conversation_id=conversation_id, last_id=last_seen)
    assert [c["id"] for c in ready["conversations"]] == [conversation_id]
    await again.expect("caught_up", conversation_id=conversation_id)
    await agent.send("message", conversation_id=conversation_id, client_id="six", body="six")
    await again.expect("message")
    # One more: a socket's frames come in order, so anything sent twice is in before it.
    await agent.send("message", conversation_id=conversation_id, client_id="seven", body="seven")
    while (await again.expect("message"))["message"]["body"] != "seven":
        pass
    bodies = [m["body"] for m in again.messages(conversation_id)]
    assert bodies == ["four", "five", "six", "seven"]


@pytest.mark.both_databases
async def test_concurrent_senders_are_seen_in_one_order_by_everyone_without_gaps(chat: Chat):
    token = await chat.token()
    tab_one, _ = await chat.visitor(token)
    conversation_id = await chat.start(tab_one, "start")
    tab_two, _ = await chat.visitor(token, conversation_id=conversation_id)
    await tab_two.expect("caught_up")
    agent, _ = await chat.agent()
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    await agent.expect("caught_up")

    async def burst(ws, prefix: str) -> None:
        for i in range(10):
            await ws.send(
                "message",
                conversation_id=conversation_id,
                client_id=f"{prefix}{i}",
                body=f"{prefix}{i}",
            )
            await asyncio.sleep(0)

    await asyncio.gather(burst(tab_one, "a"), burst(tab_two, "b"), burst(agent, "c"))
    errors = [f for ws in (tab_one, tab_two, agent) for f in ws.frames if f["type"] == "error"]
    assert errors == []
    stored = await _wait_for_count(chat, conversation_id, 31)
    expected = [m.id for m in stored]
    for ws in (tab_one, tab_two, agent):
        await _wait_until(lambda ws=ws: len({m["id"] for m in ws.messages(conversation_id)}) == 31)
        ids = [m["id"] for m in ws.messages(conversation_id)]
        assert ids == expected, "every socket sees every message once, in the stored order"


async def test_typing_and_read_receipts_reach_the_other_side_only(chat: Chat):
    agent, _ = await chat.agent()
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "hello")
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    message = (await agent.expect("message"))["message"]

    await visitor.send("typing", conversation_id=conversation_id, typing=True)
    typing = await agent.expect("typing")
    assert typing["author_type"] == "visitor" and typing["typing"] is True
    await agent.send("typing", conversation_id=conversation_id, typing=True)
    assert (await visitor.expect("typing"))["author_name"] == "Ada Agent"
    assert not [
        f for f in visitor.frames if f["type"] == "typing" and f["author_type"] == "visitor"
    ]

    await agent.send("read", conversation_id=conversation_id, id=message["id"])
    receipt = await visitor.expect("read")
    assert receipt == {
        "type": "read",
        "conversation_id": conversation_id,
        "reader": "agent",
        "id": message["id"],
    }
    stored = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    assert stored.agent_read_id == message["id"]


async def test_the_page_a_visitor_is_on_reaches_agents_only(chat: Chat):
    agent, _ = await chat.agent()
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "hello")
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    await agent.expect("caught_up", conversation_id=conversation_id)

    url = "https://shop.example/cart?step=2"
    await visitor.send("page", conversation_id=conversation_id, url=url, title="Cart \u202e")
    page = await agent.expect("page")
    assert page == {
        "type": "page", "conversation_id": conversation_id, "url": url, "title": "Cart"
    }  # fmt: skip
    await visitor.send("page", conversation_id=conversation_id, url="javascript:alert(1)")
    assert (await visitor.expect("error"))["code"] == "invalid"
    await visitor.send("ping")
    await visitor.expect("pong")
    assert not [f for f in visitor.frames if f["type"] == "page"]
    assert [f["url"] for f in agent.frames if f["type"] == "page"] == [url]


async def test_internal_notes_reach_agents_but_never_the_visitor(chat: Chat):
    agent, _ = await chat.agent()
    visitor, _ = await chat.visitor()
    conversation_id = await chat.start(visitor, "hello")
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    await agent.send("note", conversation_id=conversation_id, client_id="n1", body="VIP customer")
    note = await agent.expect("message", timeout=5)
    while note["message"]["body"] != "VIP customer":
        note = await agent.expect("message")
    assert note["message"]["internal"] is True
    await agent.send("message", conversation_id=conversation_id, client_id="r1", body="Hi there")
    await visitor.expect("message", timeout=5)
    reply = await visitor.expect("message")
    assert reply["message"]["body"] == "Hi there"
    assert all(not m["internal"] for m in visitor.messages(conversation_id))

    # Nor does a visitor catching up get the note.
    again, _ = await chat.visitor(
        await _token_of(chat, conversation_id), conversation_id=conversation_id
    )
    await again.expect("caught_up")
    assert [m["body"] for m in again.messages(conversation_id)] == ["hello", "Hi there"]


async def test_another_visitors_conversation_is_refused(chat: Chat):
    owner, _ = await chat.visitor()
    conversation_id = await chat.start(owner, "private things")
    stranger, ready = await chat.visitor(conversation_id=conversation_id)
    assert ready["conversations"] == []
    refused = await stranger.expect("error")
    assert refused["code"] == "not_found"
    for kind, extra in (("resume", {"last_id": 0}), ("message", {"client_id": "x", "body": "hi"})):
        await stranger.send(kind, conversation_id=conversation_id, **extra)
        assert (await stranger.expect("error"))["code"] == "not_found"
    # The answers to a socket's frames come in order: a catch-up would be in before the pong.
    await stranger.send("ping")
    await stranger.expect("pong")
    assert stranger.messages(conversation_id) == []
    stored = await chat.server.core.chat.chat_messages(chat.tenant.id, conversation_id)
    assert [m.body for m in stored] == ["private things"]


async def test_a_forged_or_missing_token_closes_the_socket(chat: Chat):
    from tests.messenger.conftest import open_ws

    ws = await open_ws(chat.server.url, "/messenger/ws")
    await ws.send("hello", token="forged.token.value")
    assert await ws.wait_closed() == 4401
    ws = await open_ws(chat.server.url, "/messenger/ws")
    await ws.send("message", conversation_id=1, client_id="x", body="before hello")
    assert await ws.wait_closed() == 4401


async def test_agent_socket_needs_a_signed_in_agent(chat: Chat):
    from tests.messenger.conftest import open_ws

    ws = await open_ws(chat.server.url, "/agent/ws")
    await ws.send("hello")
    assert await ws.wait_closed() == 4401


# ------------------------------------------------------------------ helpers
async def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _wait_for_count(chat: Chat, conversation_id: int, count: int):
    for _ in range(250):
        stored = await chat.server.core.chat.chat_messages(chat.tenant.id, conversation_id)
        if len(stored) >= count:
            return stored
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {len(stored)} of {count} messages were stored")


async def _token_of(chat: Chat, conversation_id: int) -> str:
    from portal.messenger.service import visitor_token
    from portal.security import Signer

    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    return visitor_token(Signer(_secret(chat)), chat.tenant.id, conversation.visitor_id)


def _secret(chat: Chat) -> str:
    return "test-secret-key-that-is-long-enough-0123456789"


async def test_a_signed_in_customer_continues_on_another_device(chat: Chat):
    from tests.conftest import customer_cookie

    customer = await chat.server.core.customers.ensure_customer(
        chat.tenant.id, "kim@example.com", "Kim"
    )
    cookie = await customer_cookie(chat.server.core, _secret(chat), customer)
    laptop, ready = await chat.visitor(cookie=cookie)
    assert ready["signed_in"] is True
    conversation_id = await chat.start(laptop, "started on the laptop")
    conversation = await chat.server.core.chat.get_conversation(chat.tenant.id, conversation_id)
    assert conversation.customer_id == customer.id
    assert conversation.visitor_email == "kim@example.com"  # known from the account

    # The phone has another visitor token but the same account.
    phone, ready = await chat.visitor(cookie=cookie, conversation_id=conversation_id)
    assert [c["id"] for c in ready["conversations"]] == [conversation_id]
    await phone.expect("caught_up")
    assert [m["body"] for m in phone.messages(conversation_id)] == ["started on the laptop"]

    # Without the account, the same conversation is someone else's.
    stranger, ready = await chat.visitor(conversation_id=conversation_id)
    assert ready["conversations"] == [] and ready["signed_in"] is False
    assert (await stranger.expect("error"))["code"] == "not_found"


async def test_a_message_to_a_conversation_listed_at_hello_reads_nothing_first(chat: Chat):
    token = await chat.token()
    first, _ = await chat.visitor(token)
    conversation_id = await chat.start(first, "Hello")
    await first.close()
    # A new socket of the same visitor (another tab, a reload): its `ready` lists the
    # conversation, which proves it is the visitor's; the message needs no read before its store.
    visitor, ready = await chat.visitor(token)
    assert [c["id"] for c in ready["conversations"]] == [conversation_id]
    async with counted(chat.server.core) as seen:
        await visitor.send("message", conversation_id=conversation_id, client_id="m", body="Hi")
        await visitor.expect("ack", client_id="m")
    assert seen.statements == ["INSERT chat_messages", "UPDATE conversations"]


async def test_a_moments_messages_reach_each_agent_as_one_inbox_frame(chat: Chat):
    """The inbox is a list: a batch's messages to three conversations are one frame to each
    agent, carrying each conversation as it is after them."""
    agent, _ = await chat.agent()
    visitors = [(await chat.visitor())[0] for _ in range(3)]
    ids = [await chat.start(visitor, f"Question {n}") for n, visitor in enumerate(visitors)]
    # Long enough that the three messages below surely meet in one batch.
    chat.server.service("messenger").messages.gather_s = 1.0
    for n, (visitor, conversation_id) in enumerate(zip(visitors, ids, strict=True)):
        await visitor.send(
            "message", conversation_id=conversation_id, client_id=f"f{n}", body=f"Follow-up {n}"
        )
    for n, visitor in enumerate(visitors):
        await visitor.expect("ack", client_id=f"f{n}")
    while True:
        inbox = await agent.expect("inbox")
        previews = {c["id"]: c["last_message_preview"] for c in inbox["conversations"]}
        if any(preview.startswith("Follow-up") for preview in previews.values()):
            break
    assert previews == {cid: f"Follow-up {n}" for n, cid in enumerate(ids)}
