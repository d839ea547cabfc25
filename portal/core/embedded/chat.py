"""The embedded core's messenger side: conversations, chat messages, canned responses.

Every write to a conversation first locks the conversation's row (an UPDATE that changes
nothing), so the writes of one conversation go one at a time. That gives two guarantees the
messenger relies on: message ids are handed out in commit order within a conversation, so a
client catching up with `after_id` never skips a message committed late; and a visitor message
either lands in the transcript of the ticket the conversation becomes, or sees the ticket and
is added to it as a reply, never neither.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import (
    CONVERSATION_STATUSES,
    Attachment,
    AttachmentDraft,
    CannedResponse,
    ChatMessage,
    Conflict,
    Conversation,
    Customer,
    Event,
    NotFound,
    Reply,
    Ticket,
    TicketDraft,
)
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, CoreEngine
from portal.core.embedded.rows import (
    aware,
    from_row,
    insert_attachments,
    require_in_tenant,
    utcnow,
)

AUTHOR_TYPES = ("visitor", "agent", "system")
READERS = ("visitor", "agent")
SUBJECT_LENGTH = 200
PREVIEW_LENGTH = 120
DEFAULT_NAMES = {"visitor": "Visitor", "agent": "Agent", "system": "System"}


def _preview(body: str, attachments: tuple[AttachmentDraft, ...] | tuple[Attachment, ...]) -> str:
    text = " ".join(body.split())
    if not text and attachments:
        text = attachments[0].filename
    return text[:PREVIEW_LENGTH]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _drafts(attachments: tuple[Attachment, ...]) -> tuple[AttachmentDraft, ...]:
    return tuple(
        AttachmentDraft(a.filename, a.content_type, a.size, a.storage_key) for a in attachments
    )


def _conversation_select() -> sa.Select:
    """Conversations with their assignee's name."""
    cv, ag = t.conversations, t.agents
    return sa.select(cv, sa.func.coalesce(ag.c.name, "").label("assignee_name")).select_from(
        cv.outerjoin(ag, ag.c.id == cv.c.assignee_agent_id)
    )


# Every chat message runs these; built once with bound parameters, they skip SQLAlchemy's
# statement building and cache-key work on each call (about 4x faster on SQLite).
_CV = t.conversations.c
# (Parameter names differ from column names: an UPDATE reserves those for its SET clause.)
_MINE = (_CV.id == sa.bindparam("cv_id")) & (_CV.tenant_id == sa.bindparam("cv_tenant"))
_GET_CONVERSATION = _conversation_select().where(_MINE)
_LOCK_CONVERSATION = t.conversations.update().where(_MINE).values(updated_at=_CV.updated_at)
_CONVERSATION_ROW = sa.select(t.conversations).where(_MINE)
_MESSAGE_BY_CLIENT = sa.select(t.chat_messages).where(
    (t.chat_messages.c.conversation_id == sa.bindparam("cv_id"))
    & (t.chat_messages.c.client_id == sa.bindparam("by_client"))
)
_INSERT_MESSAGE = t.chat_messages.insert()
_AFTER_PUBLIC_MESSAGE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(
        updated_at=sa.bindparam("now"),
        last_message_id=sa.bindparam("message_id"),
        last_message_preview=sa.bindparam("preview"),
        status=sa.bindparam("new_status"),
    )
)
_AFTER_NOTE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(updated_at=sa.bindparam("now"))
)


class ChatStore:
    """Mixed into EmbeddedCore, which supplies the engine, the event bus and the ticket side."""

    engine: CoreEngine
    _bus: Any

    if TYPE_CHECKING:

        async def _customer_id(self, tenant_id: int, email: str, name: str) -> int: ...

        async def get_customer(self, tenant_id: int, customer_id: int) -> Customer: ...

        async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket: ...

        async def create_ticket(
            self, tenant_id: int, draft: TicketDraft, idempotency_key: str
        ) -> Ticket: ...

        async def add_reply(
            self,
            tenant_id: int,
            ticket_id: int,
            *,
            author_type: str,
            author_id: int,
            body: str,
            internal: bool,
            idempotency_key: str,
            attachments: tuple[AttachmentDraft, ...] = (),
        ) -> Reply: ...

    # ----------------------------------------------------------- conversations
    @staticmethod
    def _conversation(row: Any) -> Conversation:
        return from_row(
            Conversation,
            row,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            visitor_email_verified=bool(row.visitor_email_verified),
        )

    async def _conversation_where(self, where: Any) -> Conversation | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_conversation_select().where(where))).first()
        return self._conversation(row) if row is not None else None

    @staticmethod
    def _mine(tenant_id: int, conversation_id: int) -> Any:
        c = t.conversations.c
        return (c.id == conversation_id) & (c.tenant_id == tenant_id)

    async def _lock_conversation(
        self, conn: CoreConnection, tenant_id: int, conversation_id: int
    ) -> Any:
        """The conversation's row, locked until `conn`'s transaction ends (see the module doc)."""
        params = {"cv_id": conversation_id, "cv_tenant": tenant_id}
        result = await conn.execute(_LOCK_CONVERSATION, params)
        if result.rowcount == 0:
            raise NotFound("no such conversation")
        return (await conn.execute(_CONVERSATION_ROW, params)).one()

    async def get_conversation(self, tenant_id: int, conversation_id: int) -> Conversation:
        params = {"cv_id": conversation_id, "cv_tenant": tenant_id}
        async with self.engine.connect() as conn:
            row = (await conn.execute(_GET_CONVERSATION, params)).first()
        if row is None:
            raise NotFound("no such conversation")
        return self._conversation(row)

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
        signed_in = await self.get_customer(tenant_id, customer_id) if customer_id else None
        if signed_in is not None and email in ("", signed_in.email):
            email, name = signed_in.email, name or signed_in.name
            verified = signed_in.email_verified_at is not None
        elif email:
            customer_id = await self._customer_id(tenant_id, email, name)
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
        query = (
            _conversation_select()
            .where(*where)
            .order_by(c.updated_at.desc(), c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [self._conversation(row) for row in await conn.execute(query)]

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
        c, m = t.conversations.c, t.chat_messages.c
        column = c.visitor_read_id if reader == "visitor" else c.agent_read_id
        async with self.engine.begin() as conn:
            newest = (
                await conn.execute(
                    sa.select(sa.func.max(m.id)).where(m.conversation_id == conversation_id)
                )
            ).scalar()
            target = min(message_id, newest or 0)
            await conn.execute(
                t.conversations.update()
                .where(self._mine(tenant_id, conversation_id))
                .where(column < target)
                .values({column.name: target})
            )
        return await self.get_conversation(tenant_id, conversation_id)

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
            values["customer_id"] = await self._customer_id(
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
    @staticmethod
    async def _messages(
        conn: CoreConnection, query: sa.Select, params: dict[str, Any] | None = None
    ) -> list[ChatMessage]:
        rows = (await conn.execute(query, params)).all()
        files: dict[int, list[Attachment]] = defaultdict(list)
        if rows:
            a = t.attachments.c
            for row in await conn.execute(
                sa.select(t.attachments)
                .where(a.message_id.in_([r.id for r in rows]))
                .order_by(a.id)
            ):
                files[row.message_id].append(from_row(Attachment, row))
        return [
            from_row(
                ChatMessage, row, created_at=aware(row.created_at), attachments=tuple(files[row.id])
            )
            for row in rows
        ]

    async def add_chat_message(
        self,
        tenant_id: int,
        conversation_id: int,
        *,
        author_type: str,
        author_id: int | None,
        author_name: str,
        body: str,
        client_id: str,
        internal: bool = False,
        attachments: tuple[AttachmentDraft, ...] = (),
    ) -> ChatMessage:
        """Store a message once per client id; a resend answers with the stored message."""
        if author_type not in AUTHOR_TYPES:
            raise Conflict(f"author_type must be one of {', '.join(AUTHOR_TYPES)}")
        if internal and author_type == "visitor":
            raise Conflict("a visitor cannot write an internal note")
        if not client_id or len(client_id) > 100:
            raise Conflict("a message needs a client id of 1 to 100 characters")
        if not body.strip() and not attachments:
            raise Conflict("a message needs a text or a file")
        by_client = {"cv_id": conversation_id, "by_client": client_id}
        mine = {"cv_id": conversation_id, "cv_tenant": tenant_id}
        try:
            async with self.engine.begin() as conn:
                conversation = await self._lock_conversation(conn, tenant_id, conversation_id)
                found = await self._messages(conn, _MESSAGE_BY_CLIENT, by_client)
                if found:
                    (message,) = found
                else:
                    message = await self._insert_message(
                        conn,
                        tenant_id,
                        conversation,
                        author_type=author_type,
                        author_id=author_id,
                        author_name=author_name,
                        body=body,
                        client_id=client_id,
                        internal=internal,
                        attachments=attachments,
                    )
        except IntegrityError:
            # The lock makes this unlikely, but a duplicate client id must never become an error.
            async with self.engine.connect() as conn:
                found = await self._messages(conn, _MESSAGE_BY_CLIENT, by_client)
                conversation = (await conn.execute(_CONVERSATION_ROW, mine)).first()
            if not found:
                raise
            (message,) = found
        if (
            author_type == "visitor"
            and not internal
            and conversation is not None
            and conversation.ticket_id is not None
            and message.id > (conversation.ticket_through_id or 0)
        ):
            # A resend does this again, harmlessly: the reply's key is the message's id.
            await self._copy_to_ticket(tenant_id, conversation.ticket_id, message)
        return message

    async def _insert_message(
        self,
        conn: CoreConnection,
        tenant_id: int,
        conversation: Any,
        *,
        author_type: str,
        author_id: int | None,
        author_name: str,
        body: str,
        client_id: str,
        internal: bool,
        attachments: tuple[AttachmentDraft, ...],
    ) -> ChatMessage:
        now = utcnow()
        values = dict(
            conversation_id=conversation.id,
            author_type=author_type,
            author_id=author_id,
            author_name=author_name[:200],
            body=body,
            internal=internal,
            client_id=client_id,
            created_at=now,
        )
        result = await conn.execute(_INSERT_MESSAGE, values)
        message_id = result.inserted_primary_key[0]
        await insert_attachments(conn, tenant_id, attachments, message_id=message_id)
        if internal:
            await conn.execute(_AFTER_NOTE, {"cv_id": conversation.id, "now": now})
        else:
            # A visitor coming back to a closed conversation wants someone to answer.
            reopen = author_type == "visitor" and conversation.status == "closed"
            await conn.execute(
                _AFTER_PUBLIC_MESSAGE,
                {
                    "cv_id": conversation.id,
                    "now": now,
                    "message_id": message_id,
                    "preview": _preview(body, attachments),
                    "new_status": "waiting" if reopen else conversation.status,
                },
            )
        if attachments:  # their ids are needed for links: read them back
            (message,) = await self._messages(
                conn,
                _MESSAGE_BY_CLIENT,
                {"cv_id": conversation.id, "by_client": client_id},
            )
            return message
        return ChatMessage(id=message_id, **values)

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
            return await self._messages(conn, query)

    # ------------------------------------------------------------ to a ticket
    async def conversation_to_ticket(self, tenant_id: int, conversation_id: int) -> Ticket:
        """The ticket this conversation became, made once: a transcript, then later replies."""
        conversation = await self.get_conversation(tenant_id, conversation_id)
        if conversation.ticket_id is None and not conversation.visitor_email:
            raise Conflict("an email address is needed")
        c, m = t.conversations.c, t.chat_messages.c
        mine = self._mine(tenant_id, conversation_id)
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
                transcript = await self._messages(
                    conn,
                    sa.select(t.chat_messages)
                    .where(public)
                    .where(m.id <= state.ticket_through_id)
                    .order_by(m.id),
                )
        ticket_id = state.ticket_id
        if ticket_id is None:
            ticket = await self.create_ticket(
                tenant_id, self._ticket_draft(state, transcript), f"chat-{conversation_id}"
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
            later = await self._messages(
                conn,
                sa.select(t.chat_messages)
                .where(public)
                .where(m.author_type == "visitor")
                .where(m.id > state.ticket_through_id)
                .order_by(m.id),
            )
        for message in later:
            await self._copy_to_ticket(tenant_id, ticket_id, message)
        return await self.get_ticket(tenant_id, ticket_id)

    @staticmethod
    def _ticket_draft(conversation: Any, transcript: list[ChatMessage]) -> TicketDraft:
        lines = []
        for message in transcript:
            name = message.author_name or (
                conversation.visitor_name if message.author_type == "visitor" else ""
            )
            text = message.body
            if message.attachments:
                text += "".join(f" [{a.filename}]" for a in message.attachments)
            lines.append(f"{name or DEFAULT_NAMES[message.author_type]}: {text.strip()}")
        first = next((m.body for m in transcript if m.author_type == "visitor"), "")
        subject = conversation.subject or _first_line(first)[:SUBJECT_LENGTH] or "Chat"
        return TicketDraft(
            subject=subject,
            description="\n".join(lines),
            requester_email=conversation.visitor_email,
            requester_name=conversation.visitor_name,
            source="chat",
            attachments=tuple(a for m in transcript for a in _drafts(m.attachments)),
        )

    async def _copy_to_ticket(self, tenant_id: int, ticket_id: int, message: ChatMessage) -> None:
        """A visitor's chat message as the requester's reply on the ticket (idempotent)."""
        ticket = await self.get_ticket(tenant_id, ticket_id)
        await self.add_reply(
            tenant_id,
            ticket_id,
            author_type="customer",
            author_id=ticket.customer_id,
            body=message.body,
            internal=False,
            idempotency_key=f"chat-{message.id}",
            attachments=_drafts(message.attachments),
        )

    # -------------------------------------------------------- canned responses
    async def list_canned_responses(self, tenant_id: int) -> list[CannedResponse]:
        r = t.canned_responses.c
        query = sa.select(t.canned_responses).where(r.tenant_id == tenant_id).order_by(r.shortcut)
        async with self.engine.connect() as conn:
            return [from_row(CannedResponse, row) for row in await conn.execute(query)]

    async def save_canned_response(
        self, tenant_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse:
        """Create or change a canned response; shortcuts are stripped, lower case, unique."""
        shortcut = shortcut.strip().lower()
        if not shortcut or len(shortcut) > 100:
            raise Conflict("a shortcut has 1 to 100 characters")
        r = t.canned_responses.c
        try:
            async with self.engine.begin() as conn:
                if response_id is None:
                    result = await conn.execute(
                        t.canned_responses.insert().values(
                            tenant_id=tenant_id, shortcut=shortcut, body=body, created_at=utcnow()
                        )
                    )
                    response_id = result.inserted_primary_key[0]
                else:
                    result = await conn.execute(
                        t.canned_responses.update()
                        .where(r.id == response_id)
                        .where(r.tenant_id == tenant_id)
                        .values(shortcut=shortcut, body=body)
                    )
                    if result.rowcount == 0:
                        raise NotFound("no such canned response")
        except IntegrityError as exc:
            raise Conflict(f"the shortcut {shortcut!r} is taken") from exc
        assert response_id is not None
        return CannedResponse(response_id, tenant_id, shortcut, body)

    async def delete_canned_response(self, tenant_id: int, response_id: int) -> None:
        r = t.canned_responses.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.canned_responses.delete()
                .where(r.id == response_id)
                .where(r.tenant_id == tenant_id)
            )
        if result.rowcount == 0:
            raise NotFound("no such canned response")
