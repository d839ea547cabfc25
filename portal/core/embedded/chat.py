"""The embedded core's chat domain: conversations, chat messages, canned responses.

The writes of one conversation go one at a time: on PostgreSQL each first locks the
conversation's row (an UPDATE that changes nothing); on SQLite the one writer holds the whole
database from its first write to its commit, so no lock is needed. That gives two guarantees the
messenger relies on: message ids are handed out in commit order within a conversation, so a
client catching up with `after_id` never skips a message committed late; and a visitor message
either lands in the transcript of the ticket the conversation becomes, or sees the ticket and
is added to it as a reply, never neither (`chat_tickets.py` makes and feeds the ticket).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.bus import EventBus
from portal.core.contract import (
    CONVERSATION_STATUSES,
    CannedResponse,
    ChatMessage,
    Conflict,
    Conversation,
    MessageDraft,
    NotFound,
    Ticket,
    TicketsDomain,
)
from portal.core.contract.chat import ChatPost, PostOutcome
from portal.core.embedded import schema as t
from portal.core.embedded.canned_responses import CannedResponses
from portal.core.embedded.chat_rows import (
    GET_CONVERSATION,
    READ_UP_TO,
    conversation_from_row,
    conversation_select,
    first_row,
    insert_messages,
    move_markers,
    read_messages,
)
from portal.core.embedded.chat_tickets import ChatTickets
from portal.core.embedded.customers import EmbeddedCustomers
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import require_in_tenant, utcnow
from portal.core.embedded.transcripts import SUBJECT_LENGTH

AUTHOR_TYPES = ("visitor", "agent", "system")
READERS = ("visitor", "agent")


class EmbeddedChat(EmbeddedDomain):
    """`core.chat` of the embedded core.

    A conversation becomes a ticket of `tickets` (any tickets domain will do); its visitor's email
    names a customer of `customers`.
    """

    def __init__(
        self,
        engine: CoreEngine,
        bus: EventBus,
        customers: EmbeddedCustomers,
        tickets: TicketsDomain,
    ) -> None:
        super().__init__(engine, bus)
        self._customers = customers
        self._tickets = tickets
        self._canned = CannedResponses(engine)
        self._to_ticket = ChatTickets(engine, bus, tickets)

    # ----------------------------------------------------------- conversations
    async def _conversation_where(self, where: Any) -> Conversation | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(conversation_select().where(where))).first()
        return conversation_from_row(row) if row is not None else None

    @staticmethod
    def _mine(tenant_id: int, conversation_id: int) -> Any:
        c = t.conversations.c
        return (c.id == conversation_id) & (c.tenant_id == tenant_id)

    async def get_conversation(self, tenant_id: int, conversation_id: int) -> Conversation:
        params = {"cv_id": conversation_id, "cv_tenant": tenant_id}
        async with self.engine.connect() as conn:
            row = await first_row(conn, GET_CONVERSATION, params)
        if row is None:
            raise NotFound("no such conversation")
        return conversation_from_row(row)

    async def start_conversation(
        self,
        tenant_id: int,
        *,
        visitor_id: str,
        customer_id: int | None = None,
        name: str = "",
        email: str = "",
        subject: str = "",
        idempotency_key: str,
    ) -> Conversation:
        """A new conversation, or the one already started with this idempotency key."""
        c = t.conversations.c
        by_key = (c.tenant_id == tenant_id) & (c.idempotency_key == idempotency_key)
        existing = await self._conversation_where(by_key)
        if existing is not None:
            return existing
        if len(visitor_id) > 64:
            raise Conflict("a visitor id has at most 64 characters")
        name, email = name.strip()[:200], email.strip().lower()
        # The email given names the customer (the ticket will go to it); without one, a signed-in
        # customer lends the conversation their email and name. Only then is the email proved:
        # a typed address, even a known customer's, is just what someone typed.
        verified = False
        signed_in = (
            await self._customers.get_customer(tenant_id, customer_id) if customer_id else None
        )
        if signed_in is not None and email in ("", signed_in.email):
            email, name = signed_in.email, name or signed_in.name
            verified = signed_in.email_verified_at is not None
        elif email:
            customer_id = await self._customers.ensure_customer_id(tenant_id, email, name)
        now = utcnow()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.conversations.insert().values(
                        tenant_id=tenant_id,
                        visitor_id=visitor_id,
                        customer_id=customer_id,
                        status="waiting",
                        visitor_name=name,
                        visitor_email=email,
                        visitor_email_verified=verified,
                        subject=" ".join(subject.split())[:SUBJECT_LENGTH],
                        last_message_id=0,
                        last_message_preview="",
                        visitor_read_id=0,
                        agent_read_id=0,
                        idempotency_key=idempotency_key,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            # The same key sent twice at once: the other request stored it; answer with that.
            if await self._conversation_where(by_key) is None:
                raise
        found = await self._conversation_where(by_key)
        assert found is not None
        return found

    async def list_conversations(
        self,
        tenant_id: int,
        *,
        visitor_id: str | None = None,
        customer_id: int | None = None,
        status: str | None = None,
        assignee_agent_id: int | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
    ) -> list[Conversation]:
        """Newest activity first; visitor_id and customer_id together mean either matches."""
        c = t.conversations.c
        where = [c.tenant_id == tenant_id]
        whose = []
        if visitor_id is not None:
            # An empty visitor id is nobody's: it must not list every conversation without one.
            whose.append(c.visitor_id == visitor_id if visitor_id else sa.false())
        if customer_id is not None:
            whose.append(c.customer_id == customer_id)
        if whose:
            where.append(sa.or_(*whose))
        if status is not None:
            where.append(c.status == status)
        if assignee_agent_id is not None:
            where.append(c.assignee_agent_id == assignee_agent_id)
        if created_before is not None:
            where.append(c.created_at < created_before)
        query = (
            conversation_select()
            .where(*where)
            .order_by(c.updated_at.desc(), c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [conversation_from_row(row) for row in await conn.execute(query)]

    async def assign_conversation(
        self, tenant_id: int, conversation_id: int, agent_id: int | None
    ) -> Conversation:
        """An agent takes the conversation (status "open"); None hands it back ("waiting")."""
        async with self.engine.begin() as conn:
            await require_in_tenant(conn, t.agents, tenant_id, agent_id, "no such agent")
            result = await conn.execute(
                t.conversations.update()
                .where(self._mine(tenant_id, conversation_id))
                .values(
                    assignee_agent_id=agent_id,
                    status="open" if agent_id is not None else "waiting",
                    updated_at=utcnow(),
                )
            )
            if result.rowcount == 0:
                raise NotFound("no such conversation")
        return await self.get_conversation(tenant_id, conversation_id)

    async def set_conversation_status(
        self, tenant_id: int, conversation_id: int, status: str
    ) -> Conversation:
        if status not in CONVERSATION_STATUSES:
            raise Conflict(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.conversations.update()
                .where(self._mine(tenant_id, conversation_id))
                .values(status=status, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise NotFound("no such conversation")
        return await self.get_conversation(tenant_id, conversation_id)

    async def mark_conversation_read(
        self, tenant_id: int, conversation_id: int, *, reader: str, message_id: int
    ) -> Conversation:
        """Move a read marker forward: never back, never past the newest message."""
        if reader not in READERS:
            raise Conflict(f"reader must be one of {', '.join(READERS)}")
        params = {"cv_id": conversation_id, "cv_tenant": tenant_id, "message_id": message_id}
        async with self.engine.begin() as conn:
            row = await first_row(conn, READ_UP_TO[reader], params)
        if row is None:
            raise NotFound("no such conversation")
        return conversation_from_row(row)

    async def mark_conversations_read(
        self, tenant_id: int, *, reader: str, up_to: Mapping[int, int]
    ) -> dict[int, int]:
        """`mark_conversation_read` for many conversations (id -> message id), in one
        transaction; each one's marker after it. Conversations not of the tenant are left out."""
        if reader not in READERS:
            raise Conflict(f"reader must be one of {', '.join(READERS)}")
        column = f"{reader}_read_id"
        markers = {}
        async with self.engine.begin() as conn:
            # In conversation order, as messages take their rows' locks (no circular waits).
            for conversation_id, message_id in sorted(up_to.items()):
                params = {
                    "cv_id": conversation_id,
                    "cv_tenant": tenant_id,
                    "message_id": message_id,
                }
                row = await first_row(conn, READ_UP_TO[reader], params)
                if row is not None:
                    markers[conversation_id] = getattr(row, column)
        return markers

    async def update_conversation_contact(
        self, tenant_id: int, conversation_id: int, *, name: str = "", email: str = ""
    ) -> Conversation:
        """Set the visitor's name and/or email; an email links the conversation to its customer."""
        conversation = await self.get_conversation(tenant_id, conversation_id)
        name, email = name.strip()[:200], email.strip().lower()
        values: dict[str, Any] = {}
        if name:
            values["visitor_name"] = name
        if email:
            values["visitor_email"] = email
            values["visitor_email_verified"] = False  # typed, whoever typed it
            values["customer_id"] = await self._customers.ensure_customer_id(
                tenant_id, email, name or conversation.visitor_name
            )
        if values:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.conversations.update()
                    .where(self._mine(tenant_id, conversation_id))
                    .values(**values)
                )
        return await self.get_conversation(tenant_id, conversation_id)

    # ---------------------------------------------------------------- messages
    async def add_chat_message(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> ChatMessage:
        """Store a message once per client id; a resend answers with the stored message."""
        message, _ = await self.post_chat_message(tenant_id, conversation_id, draft)
        return message

    async def post_chat_message(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> tuple[ChatMessage, Conversation]:
        """`add_chat_message`, with the conversation as it is after the message."""
        (outcome,) = await self.post_chat_messages([ChatPost(tenant_id, conversation_id, draft)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def post_chat_messages(self, posts: Sequence[ChatPost]) -> list[PostOutcome]:
        """Several messages in one transaction: one commit (on SQLite, the pages the messages
        share written once) for the messages of a moment, however many sockets sent them."""
        outcomes: list[PostOutcome | None] = [_refusal(post.draft) for post in posts]
        # PostgreSQL's row locks are taken in conversation order, so that two processes'
        # batches never wait for each other in a circle; a conversation's messages keep theirs.
        order = sorted(
            (i for i, refused in enumerate(outcomes) if refused is None),
            key=lambda i: posts[i].conversation_id,
        )
        stored: list[tuple[int, ChatMessage, Any]] = []
        if order:
            async with self.engine.begin() as conn:
                inserted = await insert_messages(conn, [posts[i] for i in order])
                for i, outcome in zip(order, inserted, strict=True):
                    if isinstance(outcome, NotFound):  # nothing of it was written
                        outcomes[i] = outcome
                    else:
                        stored.append((i, *outcome))
                # One statement for the conversations of every new message (resends have rows).
                after = await move_markers(conn, [m for _, m, row in stored if row is None])
            stored = [
                (i, m, after[m.conversation_id] if row is None else row) for i, m, row in stored
            ]
        for i, message, row in stored:
            outcomes[i] = (message, conversation_from_row(row))
            if (
                message.author_type == "visitor"
                and not message.internal
                and row.ticket_id is not None
                and message.id > (row.ticket_through_id or 0)
            ):
                # A resend does this again, harmlessly: the reply's key is the message's id.
                try:
                    await self._to_ticket.copy(posts[i].tenant_id, row.ticket_id, message)
                except Exception as exc:  # stored, not yet a reply: the resend finishes it
                    outcomes[i] = exc
        return [outcome for outcome in outcomes if outcome is not None]

    async def chat_messages(
        self,
        tenant_id: int,
        conversation_id: int,
        *,
        after_id: int = 0,
        limit: int = 500,
        include_internal: bool = False,
    ) -> list[ChatMessage]:
        """The conversation's messages after `after_id`, in ascending id order."""
        m = t.chat_messages.c
        query = (
            sa.select(t.chat_messages)
            .where(m.conversation_id == conversation_id)
            .where(m.id > after_id)
            .order_by(m.id)
            .limit(limit)
        )
        if not include_internal:
            query = query.where(m.internal.is_(False))
        c = t.conversations.c
        async with self.engine.connect() as conn:
            found = await conn.execute(
                sa.select(c.id).where(self._mine(tenant_id, conversation_id))
            )
            if found.first() is None:
                raise NotFound("no such conversation")
            return await read_messages(conn, query)

    # ------------------------------------------------------------ to a ticket
    async def conversation_to_ticket(self, tenant_id: int, conversation_id: int) -> Ticket:
        """The ticket this conversation became, made once: a transcript, then later replies."""
        conversation = await self.get_conversation(tenant_id, conversation_id)
        return await self._to_ticket.ticket_of(tenant_id, conversation)

    # -------------------------------------------------------- canned responses
    async def list_canned_responses(self, tenant_id: int) -> list[CannedResponse]:
        return await self._canned.list_canned_responses(tenant_id)

    async def save_canned_response(
        self, tenant_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse:
        return await self._canned.save_canned_response(tenant_id, shortcut, body, response_id)

    async def delete_canned_response(self, tenant_id: int, response_id: int) -> None:
        await self._canned.delete_canned_response(tenant_id, response_id)


def _refusal(draft: MessageDraft) -> Conflict | None:
    """Why a message cannot be stored as it is, or None."""
    if draft.author_type not in AUTHOR_TYPES:
        return Conflict(f"author_type must be one of {', '.join(AUTHOR_TYPES)}")
    if draft.internal and draft.author_type == "visitor":
        return Conflict("a visitor cannot write an internal note")
    if not draft.client_id or len(draft.client_id) > 100:
        return Conflict("a message needs a client id of 1 to 100 characters")
    if not draft.body.strip() and not draft.attachments:
        return Conflict("a message needs a text or a file")
    return None
