"""Chat messages stored in batches: a moment's messages in one transaction, then fanned out."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from portal.core.contract import ChatMessage, Conversation, MessageDraft, NotFound
from portal.core.embedded.engine import BUSY_TIMEOUT_S
from portal.hub import MemoryHub
from portal.messenger.batches import BATCH, MessageBatches, PostFailed
from portal.messenger.service import conversation_channel
from tests.core.test_ticket_writes import counted


def _draft(body: str, client_id: str) -> MessageDraft:
    return MessageDraft(
        author_type="visitor", author_id=None, author_name="", body=body, client_id=client_id
    )


async def test_the_messages_of_a_moment_are_one_transaction_and_fan_out_in_order(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    conversations = [
        await core.chat.start_conversation(tenant.id, visitor_id=f"v{n}", idempotency_key=f"k{n}")
        for n in range(3)
    ]
    hub = MemoryHub()
    fanned: list[tuple[int, int]] = []

    async def fan_out(stored: list[tuple[int, ChatMessage, Conversation]]) -> None:
        for tenant_id, message, _conversation in stored:
            fanned.append((message.conversation_id, message.id))
            await hub.publish(
                conversation_channel(tenant_id, message.conversation_id),
                {"type": "message", "id": message.id},
            )

    batches = MessageBatches(core, fan_out)
    first = conversations[0]
    async with hub.subscription() as sub, counted(core) as seen:
        await sub.add(conversation_channel(tenant.id, first.id))
        posted = await asyncio.gather(
            *(batches.post(tenant.id, c.id, _draft(f"to {c.id}", "a")) for c in conversations),
            batches.post(tenant.id, first.id, _draft("and again", "b")),
            batches.post(tenant.id, 10**9, _draft("nowhere", "c")),
            return_exceptions=True,
        )
        heard = [await asyncio.wait_for(anext(sub), 5) for _ in range(2)]
    assert seen.commits == 1  # one transaction, the refused message's included
    assert isinstance(posted[-1], NotFound)
    stored: list[Any] = posted[:-1]
    for (message, after), body in zip(
        stored, [f"to {c.id}" for c in conversations] + ["and again"], strict=True
    ):
        assert message.body == body and after.last_message_id >= message.id
    # Fanned out one by one in the order stored: a conversation's sockets see ids ascending.
    assert fanned == sorted(fanned) and len(fanned) == 4
    assert [frame["id"] for frame in heard] == [stored[0][0].id, stored[3][0].id]
    assert stored[0][0].id < stored[3][0].id


async def test_a_crowd_is_stored_in_batches_of_at_most_batch(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    conversation = await core.chat.start_conversation(
        tenant.id, visitor_id="v", idempotency_key="k"
    )

    async def fan_out(*_: Any) -> None:
        pass

    batches = MessageBatches(core, fan_out)
    async with counted(core) as seen:
        posted = await asyncio.gather(
            *(
                batches.post(tenant.id, conversation.id, _draft(f"m{n}", f"c{n}"))
                for n in range(BATCH * 2 + 1)
            )
        )
    assert seen.commits == 3
    ids = [message.id for message, _ in posted]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stored = await core.chat.chat_messages(tenant.id, conversation.id)
    assert [m.body for m in stored] == [f"m{n}" for n in range(BATCH * 2 + 1)]


@pytest.mark.parametrize("stopping", ["gathering", "idle"])
async def test_closing_stores_what_is_gathering(core, stopping):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    conversation = await core.chat.start_conversation(
        tenant.id, visitor_id="v", idempotency_key="k"
    )

    async def fan_out(*_: Any) -> None:
        pass

    batches = MessageBatches(core, fan_out, gather_s=60)
    sent = None
    if stopping == "gathering":
        sent = asyncio.ensure_future(batches.post(tenant.id, conversation.id, _draft("hi", "a")))
        await asyncio.sleep(0)
    closing = asyncio.ensure_future(batches.close())
    await asyncio.sleep(0.05)
    if sent is not None:
        # The stopping app does not wait out the gathering: it stores now.
        assert closing.done() and sent.done()
        (message, _) = sent.result()
        assert [m.id for m in await core.chat.chat_messages(tenant.id, conversation.id)] == [
            message.id
        ]
    assert closing.done()


async def test_a_batch_that_cannot_be_stored_fails_each_sender_and_stores_nothing(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    conversation = await core.chat.start_conversation(
        tenant.id, visitor_id="v", idempotency_key="k"
    )

    async def fan_out(*_: Any) -> None:
        raise AssertionError("nothing was stored, so nothing goes out")

    batches = MessageBatches(core, fan_out)
    # Another process holds SQLite's write lock for longer than the writer waits for it.
    async with core.engine.begin() as conn:
        writer = conn.sync_connection.connection.dbapi_connection
    writer.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(core.engine.url.database)
    try:
        other.execute("BEGIN IMMEDIATE")
        posted = await asyncio.gather(
            batches.post(tenant.id, conversation.id, _draft("one", "a")),
            batches.post(tenant.id, conversation.id, _draft("two", "b")),
            return_exceptions=True,
        )
    finally:
        other.rollback()
        other.close()
        writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    assert [type(outcome) for outcome in posted] == [PostFailed, PostFailed]
    assert await core.chat.chat_messages(tenant.id, conversation.id) == []
