"""A chat conversation becoming a ticket: the transcript up to a fixed message, then each later
visitor message as the requester's reply (keyed by the message's id, so copied once).

`EmbeddedChat` answers `conversation_to_ticket` with this, and copies a visitor message stored
after the transcript's end as it stores it; any tickets domain will do.
"""

from __future__ import annotations

import sqlalchemy as sa

from portal.core.bus import EventBus
from portal.core.contract import (
    ChatMessage,
    Conflict,
    Conversation,
    Event,
    ReplyDraft,
    Ticket,
    TicketsDomain,
)
from portal.core.embedded import schema as t
from portal.core.embedded.chat_rows import read_messages
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import utcnow
from portal.core.embedded.transcripts import drafts_of, ticket_draft


class ChatTickets:
    """Conversations' tickets in `tickets`."""

    def __init__(self, engine: CoreEngine, bus: EventBus, tickets: TicketsDomain) -> None:
        self.engine = engine
        self._bus = bus
        self._tickets = tickets

    async def ticket_of(self, tenant_id: int, conversation: Conversation) -> Ticket:
        """The ticket the conversation became, made once: a transcript, then later replies."""
        conversation_id = conversation.id
        if conversation.ticket_id is None and not conversation.visitor_email:
            raise Conflict("an email address is needed")
        c, m = t.conversations.c, t.chat_messages.c
        mine = (c.tenant_id == tenant_id) & (c.id == conversation_id)
        public = (m.conversation_id == conversation_id) & m.internal.is_(False)
        async with self.engine.begin() as conn:
            # The first attempt fixes where the transcript ends, so a retry writes the same one.
            newest = (
                sa.select(sa.func.coalesce(sa.func.max(m.id), 0))
                .where(m.conversation_id == conversation_id)
                .scalar_subquery()
            )
            await conn.execute(
                t.conversations.update()
                .where(mine)
                .values(ticket_through_id=sa.func.coalesce(c.ticket_through_id, newest))
            )
            state = (await conn.execute(sa.select(t.conversations).where(mine))).one()
            transcript = []
            if state.ticket_id is None:
                transcript = await read_messages(
                    conn,
                    sa.select(t.chat_messages)
                    .where(public)
                    .where(m.id <= state.ticket_through_id)
                    .order_by(m.id),
                )
        ticket_id = state.ticket_id
        if ticket_id is None:
            ticket = await self._tickets.create_ticket(
                tenant_id, ticket_draft(state, transcript), f"chat-{conversation_id}"
            )
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    t.conversations.update()
                    .where(mine)
                    .where(c.ticket_id.is_(None))
                    .values(
                        ticket_id=ticket.id,
                        customer_id=sa.func.coalesce(c.customer_id, ticket.customer_id),
                        updated_at=utcnow(),
                    )
                )
            if result.rowcount:
                self._bus.publish(
                    Event(
                        "chat.ticketed",
                        tenant_id,
                        {"conversation_id": conversation_id, "ticket_id": ticket.id},
                    )
                )
            ticket_id = ticket.id
        # Visitor messages written after the transcript's end: each becomes a reply (once).
        async with self.engine.connect() as conn:
            later = await read_messages(
                conn,
                sa.select(t.chat_messages)
                .where(public)
                .where(m.author_type == "visitor")
                .where(m.id > state.ticket_through_id)
                .order_by(m.id),
            )
        for message in later:
            await self.copy(tenant_id, ticket_id, message)
        return await self._tickets.get_ticket(tenant_id, ticket_id)

    async def copy(self, tenant_id: int, ticket_id: int, message: ChatMessage) -> None:
        """A visitor's chat message as the requester's reply on the ticket (idempotent)."""
        ticket = await self._tickets.get_ticket(tenant_id, ticket_id)
        reply = ReplyDraft(
            author_type="customer",
            author_id=ticket.customer_id,
            body=message.body,
            internal=False,
            attachments=drafts_of(message.attachments),
        )
        await self._tickets.add_reply(tenant_id, ticket_id, reply, f"chat-{message.id}")
