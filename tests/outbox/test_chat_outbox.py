"""Visitors' chat messages through the edge's outbox, against a real core API server: acked
once durable on the edge (pending), shown as sending, landing at the core once each and in
order when it is back, the stored versions replacing the sending ones on every socket, a
resume giving each message once; a refused message is set aside, shown to the admin, and holds
back no other conversation."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa

from portal.core.embedded import schema
from portal.edge.outbox import EdgeOutbox
from portal.edge.outbox.rows import PENDING, SET_ASIDE, now
from portal.security import hash_password
from tests.conftest import TEST_HASH_COST, Server, staff_cookie
from tests.messenger.conftest import Chat, Ws, client_id
from tests.outbox.conftest import HOST, SECRET, Setup, core_setup, edge, until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.live_server]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    async with core_setup(tmp_path_factory.mktemp("chat-outbox")) as made:
        yield made


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(setup: Setup) -> AsyncIterator[Server]:
    async with edge(setup, live=True) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def chat(setup: Setup, served: Server) -> AsyncIterator[Chat]:
    made = Chat(served, setup.tenant)
    yield made
    await made.close()


def _outbox(served: Server) -> EdgeOutbox:
    found: EdgeOutbox = served.service("outbox")
    return found


def _visitor_messages(ws: Ws, conversation_id: int) -> list[dict[str, Any]]:
    return [m for m in ws.messages(conversation_id) if m["author_type"] == "visitor"]


def _all_stored(ws: Ws, conversation_id: int, count: int) -> list[dict[str, Any]] | None:
    got = _visitor_messages(ws, conversation_id)
    return got if len(got) >= count else None


async def test_messages_while_the_core_is_stopped_are_acked_then_land_once_in_order(
    setup: Setup, served: Server, chat: Chat
) -> None:
    token = await chat.token()
    ws, _ = await chat.visitor(token)
    conversation_id = await chat.start(ws, body="First, while the core is up")
    first = await ws.expect("message")
    other_tab, _ = await chat.visitor(token, conversation_id=conversation_id)
    await other_tab.expect("caught_up", conversation_id=conversation_id)

    await setup.core.stop()
    # A page the visitor opens meanwhile (a new socket) still finds the conversation.
    new_page, _ = await chat.visitor(token, conversation_id=conversation_id)
    await new_page.expect("caught_up", conversation_id=conversation_id)
    sent = [(client_id(), f"Queued {n}") for n in range(3)]
    for cid, body in sent:
        await ws.send("message", conversation_id=conversation_id, client_id=cid, body=body)
        ack = await ws.expect("ack", client_id=cid)
        assert ack["pending"] is True and ack["id"] is None
        assert re.fullmatch(r"R-[0-9A-Z]{8}", ack["reference"])
    # A resend of the same message (a reconnecting client does that): one row, acked again.
    await ws.send("message", conversation_id=conversation_id, client_id=sent[0][0], body="x")
    assert (await ws.expect("ack", client_id=sent[0][0]))["pending"] is True
    for cid, body in sent:  # the other tab sees each as sending, in order
        sending = await other_tab.expect("sending")
        assert sending["message"]["client_id"] == cid and sending["message"]["body"] == body
        assert sending["message"]["state"] == "sending" and "id" not in sending["message"]
    rows = await _outbox(served).outbox.store.unsent(setup.tenant.id, kind="chat")
    assert [r.state for r in rows] == [PENDING] * 3
    # The drainer backed off far (as after a long outage), so the core, back, lacks them a while.
    await until(partial(_held_back, served, setup.tenant.id), "the rows to be held back")

    await setup.core.start()
    # A reconnect with the last id it saw: the stored messages after it, then the ones still
    # sending; each once, in the order written.
    resumed, _ = await chat.visitor(
        token, conversation_id=conversation_id, last_id=first["message"]["id"]
    )
    await resumed.expect("caught_up", conversation_id=conversation_id)
    seen = [
        (f["type"], f["message"]["client_id"])
        for f in resumed.frames
        if f["type"] in ("message", "sending")
    ]
    assert [cid for _, cid in seen] == [cid for cid, _ in sent]
    kinds = [kind for kind, _ in seen]
    assert kinds == sorted(kinds)  # stored ones ("message") before sending ones
    assert "sending" in kinds

    outbox = _outbox(served).outbox
    await outbox.store.hurry()  # what the outbox does when the core answers again
    outbox.changed(setup.tenant.id)
    for socket, count in ((ws, 4), (other_tab, 4), (resumed, 3)):
        got = await until(partial(_all_stored, socket, conversation_id, count), "the stored")
        assert [m["client_id"] for m in got[-3:]] == [cid for cid, _ in sent]
        ids = [m["id"] for m in got]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    at_core = await setup.core.running.chat.chat_messages(setup.tenant.id, conversation_id)
    assert [m.body for m in at_core] == ["First, while the core is up"] + [b for _, b in sent]
    await until(lambda: _unsent_is_empty(served, setup.tenant.id), "the outbox to drain")

    # A reconnect with the last id it saw before the outage: each message once, in order.
    again, _ = await chat.visitor(
        token, conversation_id=conversation_id, last_id=first["message"]["id"]
    )
    caught = await again.expect("caught_up", conversation_id=conversation_id)
    messages = again.messages(conversation_id)
    assert [m["body"] for m in messages] == [b for _, b in sent]
    assert caught["last_id"] == messages[-1]["id"]
    assert not [f for f in again.frames if f["type"] == "sending"]


async def _held_back(served: Server, tenant_id: int) -> bool:
    store = _outbox(served).outbox.store
    far = now() + timedelta(minutes=30)
    for row in await store.unsent(tenant_id, kind="chat"):
        if row.next_at < far:
            await store.later(row, "held back by the test", 3600)
    rows = await store.unsent(tenant_id, kind="chat")
    return all(r.next_at > far and r.lease_owner is None for r in rows)


async def _unsent_is_empty(served: Server, tenant_id: int) -> bool:
    return not await _outbox(served).outbox.store.unsent(tenant_id, kind="chat")


async def test_a_refused_message_is_set_aside_for_the_admin_and_blocks_no_other_chat(
    setup: Setup, served: Server, chat: Chat
) -> None:
    tid = setup.tenant.id
    gone_ws, _ = await chat.visitor()
    gone = await chat.start(gone_ws, body="This chat will be gone")
    fine_ws, _ = await chat.visitor()
    fine = await chat.start(fine_ws, body="This chat stays")
    # The conversation disappears at the core (purged there); the edge's socket still knows it.
    async with setup.core.running.engine.begin() as conn:
        await conn.execute(sa.delete(schema.conversations).where(schema.conversations.c.id == gone))

    lost, kept = client_id(), client_id()
    await gone_ws.send("message", conversation_id=gone, client_id=lost, body="Into the void")
    await fine_ws.send("message", conversation_id=fine, client_id=kept, body="Still here")
    assert (await gone_ws.expect("ack", client_id=lost))["pending"] is True
    assert (await fine_ws.expect("ack", client_id=kept))["pending"] is True
    not_sent = await gone_ws.expect("sending", timeout=10)
    while not_sent["message"]["state"] != "not_sent":
        not_sent = await gone_ws.expect("sending", timeout=10)
    assert not_sent["message"]["client_id"] == lost
    await until(lambda: len(_visitor_messages(fine_ws, fine)) == 2, "the other chat's message")
    assert _visitor_messages(fine_ws, fine)[1]["client_id"] == kept

    held = [r for r in await _outbox(served).outbox.store.listing(tid, (SET_ASIDE,))]
    assert [r.kind for r in held] == ["chat"]
    assert held[0].reference == not_sent["message"]["reference"]
    assert "404" in held[0].reason and "conversation" in held[0].reason

    email = f"admin-{uuid.uuid4().hex[:6]}@acme.test"
    await setup.core.running.tenants.create_agent(
        tid, email, "Ada", hash_password("pw-123456", cost=TEST_HASH_COST), "admin"
    )
    cookie = await staff_cookie(setup.core.running, SECRET, setup.tenant, email)
    async with served.client(host=HOST) as client:
        client.headers["cookie"] = cookie
        page = await client.get("/admin/outbox")
    assert page.status_code == 200
    assert held[0].reference in page.text and "Into the void" in page.text
    assert "Chat message" in page.text
