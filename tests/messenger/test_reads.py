"""Read receipts, stored in batches and announced on the conversations' channels."""

from __future__ import annotations

import asyncio
from typing import Any

from portal.core.contract import ChatMessage, Conversation, MessageDraft
from portal.hub import MemoryHub, Subscription
from portal.messenger.reads import BATCH, ReadReceipts
from portal.messenger.service import conversation_channel


async def _chat(core: Any, tenant_id: int, n: int, messages: int = 2) -> tuple[Conversation, list]:
    conversation = await core.chat.start_conversation(
        tenant_id, visitor_id=f"v{n}", idempotency_key=f"k{n}"
    )
    sent: list[ChatMessage] = []
    for i in range(messages):
        draft = MessageDraft(
            author_type="visitor", author_id=None, author_name="", body=f"m{i}", client_id=f"c{i}"
        )
        sent.append(await core.chat.add_chat_message(tenant_id, conversation.id, draft))
    return conversation, sent


async def _reads(subscription: Subscription, count: int) -> list[dict[str, Any]]:
    return [await asyncio.wait_for(anext(subscription), 5) for _ in range(count)]


async def test_receipts_of_a_moment_are_stored_once_each_and_announced(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    other = await core.tenants.create_tenant("other", "Other")
    (a, (a1, a2)), (b, (_, b2)) = await _chat(core, tenant.id, 1), await _chat(core, tenant.id, 2)
    late, (late1,) = await _chat(core, tenant.id, 3, messages=1)
    hub = MemoryHub()
    receipts = ReadReceipts(core, hub, conversation_channel)
    async with hub.subscription() as sub:
        for conversation in (a, b, late):
            await sub.add(conversation_channel(tenant.id, conversation.id))
        receipts.mark(tenant.id, a.id, "agent", a1.id)
        receipts.mark(tenant.id, a.id, "agent", a2.id)  # the same conversation's: the highest
        receipts.mark(tenant.id, a.id, "agent", a1.id)
        receipts.mark(tenant.id, b.id, "visitor", b2.id + 1000)  # never past the newest
        receipts.mark(other.id, b.id, "agent", b2.id)  # not that tenant's: left out
        frames = await _reads(sub, 2)
        # A later receipt's frame comes next: nothing else was announced before it.
        receipts.mark(tenant.id, late.id, "agent", late1.id)
        frames += await _reads(sub, 1)
    assert frames == [
        {"type": "read", "conversation_id": a.id, "reader": "agent", "id": a2.id},
        {"type": "read", "conversation_id": b.id, "reader": "visitor", "id": b2.id},
        {"type": "read", "conversation_id": late.id, "reader": "agent", "id": late1.id},
    ]
    stored = await core.chat.get_conversation(tenant.id, b.id)
    assert (stored.visitor_read_id, stored.agent_read_id) == (b2.id, 0)
    assert (await core.chat.get_conversation(tenant.id, a.id)).agent_read_id == a2.id


async def test_more_receipts_than_a_batch_are_all_stored(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    chats = [await _chat(core, tenant.id, n, messages=1) for n in range(BATCH * 2 + 5)]
    hub = MemoryHub()
    receipts = ReadReceipts(core, hub, conversation_channel)
    async with hub.subscription() as sub:
        for conversation, _ in chats:
            await sub.add(conversation_channel(tenant.id, conversation.id))
        for conversation, (message,) in chats:
            receipts.mark(tenant.id, conversation.id, "agent", message.id)
        frames = await _reads(sub, len(chats))
    assert sorted(f["id"] for f in frames) == sorted(message.id for _, (message,) in chats)
    listed = await core.chat.list_conversations(tenant.id, limit=len(chats))
    assert all(c.agent_read_id == c.last_message_id for c in listed)


async def test_closing_stores_what_is_pending(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    conversation, (_, newest) = await _chat(core, tenant.id, 1)
    receipts = ReadReceipts(core, MemoryHub(), conversation_channel)
    receipts.mark(tenant.id, conversation.id, "visitor", newest.id)
    await receipts.close()
    stored = await core.chat.get_conversation(tenant.id, conversation.id)
    assert stored.visitor_read_id == newest.id
