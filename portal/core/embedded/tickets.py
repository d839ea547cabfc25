"""The embedded core's tickets domain: tickets, replies, ratings and attachments. How a new
ticket's rows are written is `new_tickets`'."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.bus import EventBus
from portal.core.contract import (
    CLOSED_STATUSES,
    TICKET_STATUSES,
    Attachment,
    Conflict,
    Event,
    NotFound,
    Rating,
    Reply,
    ReplyDraft,
    Ticket,
    TicketDraft,
    TicketPage,
)
from portal.core.embedded import schema as t
from portal.core.embedded.customers import EmbeddedCustomers
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import (
    CoreConnection,
    CoreEngine,
    changed_rows,
    fetch,
    inserted_id,
)
from portal.core.embedded.new_tickets import KeyTaken, write_ticket
from portal.core.embedded.rows import (
    aware,
    from_row,
    require_in_tenant,
    stored_attachments,
    utcnow,
)
from portal.core.embedded.ticket_queries import (
    AUTHOR_NAMES,
    NUMBER_REPAIR,
    REPLIES,
    REPLY_BY_KEY,
    TICKET_ATTACHMENTS,
    TICKET_BY_ID,
    TICKET_BY_KEY,
    UPDATED_TENANT,
    TicketWrites,
    ticket_from_row,
    ticket_list_statements,
    ticket_writes,
)
from portal.core.embedded.write_batches import WriteBatches

RATING_CHANGE_WINDOW = timedelta(days=7)
# Attempts at a ticket when a number was taken by another writer or a row it names went away.
TICKET_ATTEMPTS = 3


class EmbeddedTickets(EmbeddedDomain):
    """`core.tickets` of the embedded core; requesters are customers of `customers`."""

    def __init__(self, engine: CoreEngine, bus: EventBus, customers: EmbeddedCustomers) -> None:
        super().__init__(engine, bus)
        self._customers = customers
        self._writes: TicketWrites = ticket_writes(engine.dialect.name)
        self._batches: WriteBatches[tuple[Ticket, bool]] = WriteBatches(engine, self._write_ticket)

    # ----------------------------------------------------------------- tickets
    async def _ticket_by_key(self, tenant_id: int, idempotency_key: str) -> Ticket | None:
        params = {"tenant_id": tenant_id, "key": idempotency_key}
        async with self.engine.connect() as conn:
            found = await fetch(conn, TICKET_BY_KEY, params)
        return ticket_from_row(found[0]) if found else None

    async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket:
        params = {"tenant_id": tenant_id, "ticket_id": ticket_id}
        async with self.engine.connect() as conn:
            found = await fetch(conn, TICKET_BY_ID, params)
        if not found:
            raise NotFound("no such ticket")
        return ticket_from_row(found[0])

    async def list_tickets(
        self,
        tenant_id: int,
        *,
        customer_id: int | None = None,
        organization_id: int | None = None,
        state: str | None = None,
        query: str = "",
        offset: int = 0,
        limit: int = 25,
    ) -> TicketPage:
        scope = "customer" if customer_id is not None else ""
        scope = "organization" if organization_id is not None else scope
        count, page = ticket_list_statements(scope, state or "", bool(query))
        params: dict[str, Any] = {
            "tenant_id": tenant_id,
            "scope_id": organization_id if organization_id is not None else customer_id,
            "offset": offset,
            "limit": limit,
        }
        if query:
            escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["pattern"] = f"%{escaped}%"
        async with self.engine.connect() as conn:
            listed = await fetch(conn, page, params)
            if 0 < len(listed) < limit or (not listed and not offset):
                total = offset + len(listed)  # the last page: no need to count
            else:
                [(total,)] = await fetch(conn, count, params)
        return TicketPage([ticket_from_row(row) for row in listed], total)

    async def create_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> Ticket:
        # The unique key decides a retried or raced submission, not a read before the insert: a
        # key the tenant used already inserts nothing, rolls back (its number too) and answers
        # with that key's ticket.
        for _attempt in range(TICKET_ATTEMPTS):
            taken_number = False
            try:
                ticket, renamed = await self._insert_ticket(tenant_id, draft, idempotency_key)
            except KeyTaken:
                pass
            except IntegrityError:
                taken_number = True  # or a row it names went away; the next attempt tells
            else:
                if renamed:
                    self._bus.publish(
                        Event("customer.changed", tenant_id, {"customer_id": ticket.customer_id})
                    )
                self._bus.publish(Event("ticket.created", tenant_id, {"ticket_id": ticket.id}))
                return ticket
            existing = await self._ticket_by_key(tenant_id, idempotency_key)
            if existing is not None:
                return existing
            if taken_number:
                async with self.engine.begin() as conn:
                    await conn.execute(NUMBER_REPAIR, {UPDATED_TENANT: tenant_id})
        raise Conflict("could not allocate a ticket number; try again")

    async def _insert_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> tuple[Ticket, bool]:
        """The ticket made, and whether its requester got a name by it: alone in its own
        transaction when no other ticket is being made, else in one with the others of the
        moment (`WriteBatches`)."""
        return await self._batches.run((tenant_id, draft, idempotency_key))

    async def _write_ticket(
        self, conn: CoreConnection, item: tuple[int, TicketDraft, str]
    ) -> tuple[Ticket, bool]:
        return await write_ticket(conn, self._writes, *item)

    async def add_reply(
        self, tenant_id: int, ticket_id: int, draft: ReplyDraft, idempotency_key: str
    ) -> Reply:
        try:
            async with self.engine.begin() as conn:
                reply = await self._insert_reply(conn, tenant_id, ticket_id, draft, idempotency_key)
        except (KeyTaken, IntegrityError):
            # The same key sent again (or twice at once): answer with the reply stored for it.
            params = {"ticket_id": ticket_id, "key": idempotency_key}
            async with self.engine.connect() as conn:
                found = (await conn.execute(REPLY_BY_KEY, params)).first()
            if found is None:
                raise
            replies = await self.list_replies(tenant_id, ticket_id, include_internal=True)
            return next(reply for reply in replies if reply.id == found.id)
        self._bus.publish(
            Event(
                "ticket.replied",
                tenant_id,
                {
                    "ticket_id": ticket_id,
                    "reply_id": reply.id,
                    "internal": draft.internal,
                    "author_type": draft.author_type,
                },
            )
        )
        return reply

    async def _insert_reply(
        self,
        conn: CoreConnection,
        tenant_id: int,
        ticket_id: int,
        draft: ReplyDraft,
        idempotency_key: str,
    ) -> Reply:
        """Three statements: touch the ticket (the tenant's, else NotFound), the reply, its
        author's name. A taken key raises `KeyTaken`, so the touch is rolled back."""
        now = utcnow()
        # A customer writing on a resolved ticket opens it again, as help desks do.
        reopen = draft.author_type == "customer" and not draft.internal
        touch = {
            "touch_id": ticket_id,
            "touch_tenant": tenant_id,
            "touch_now": now,
            "reopen": reopen,
        }
        if not await changed_rows(conn, self._writes.touch, touch):
            raise NotFound("no such ticket")
        values = {
            "ticket_id": ticket_id,
            "author_type": draft.author_type,
            "author_id": draft.author_id,
            "body": draft.body,
            "internal": draft.internal,
            "key": idempotency_key,
            "now": now,
        }
        reply_id = await inserted_id(conn, self._writes.reply, values)
        if reply_id is None:
            raise KeyTaken
        files = await stored_attachments(
            conn, tenant_id, draft.attachments, ticket_id=ticket_id, reply_id=reply_id, now=now
        )
        author = AUTHOR_NAMES.get(draft.author_type)
        name = None
        if author is not None:
            found = await fetch(conn, author, {"author_id": draft.author_id})
            name = found[0][0] if found else None
        return Reply(
            reply_id,
            ticket_id,
            draft.author_type,
            name or "",
            draft.body,
            draft.internal,
            now,
            files,
        )

    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]:
        await self.get_ticket(tenant_id, ticket_id)
        params = {"ticket_id": ticket_id}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(REPLIES[include_internal], params)).all()
            files: dict[int, list[Attachment]] = defaultdict(list)
            for row in await conn.execute(TICKET_ATTACHMENTS, params):
                files[row.reply_id].append(from_row(Attachment, row))
        return [
            from_row(Reply, row, created_at=aware(row.created_at), attachments=tuple(files[row.id]))
            for row in rows
        ]

    async def set_ticket_status(
        self, tenant_id: int, ticket_id: int, status: str, *, agent_id: int | None = None
    ) -> Ticket:
        if status not in TICKET_STATUSES:
            raise Conflict(f"status must be one of {', '.join(TICKET_STATUSES)}")
        before = await self.get_ticket(tenant_id, ticket_id)
        if before.status == status:
            return before
        async with self.engine.begin() as conn:
            await conn.execute(
                t.tickets.update()
                .where(t.tickets.c.id == ticket_id)
                .where(t.tickets.c.tenant_id == tenant_id)
                .values(status=status, updated_at=utcnow())
            )
        self._bus.publish(
            Event(
                "ticket.status_changed",
                tenant_id,
                {
                    "ticket_id": ticket_id,
                    "status": status,
                    "previous": before.status,
                    "agent_id": agent_id,
                },
            )
        )
        return await self.get_ticket(tenant_id, ticket_id)

    async def assign_ticket(self, tenant_id: int, ticket_id: int, agent_id: int | None) -> Ticket:
        await self.get_ticket(tenant_id, ticket_id)
        async with self.engine.begin() as conn:
            await require_in_tenant(conn, t.agents, tenant_id, agent_id, "no such agent")
            await conn.execute(
                t.tickets.update()
                .where(t.tickets.c.id == ticket_id)
                .values(assignee_agent_id=agent_id, updated_at=utcnow())
            )
        # Its `updated_at` moved: the customer's list shows it (and sorts by it).
        data = {"ticket_id": ticket_id, "agent_id": agent_id}
        self._bus.publish(Event("ticket.assigned", tenant_id, data))
        return await self.get_ticket(tenant_id, ticket_id)

    # ----------------------------------------------------------------- ratings
    async def get_rating(self, tenant_id: int, ticket_id: int) -> Rating | None:
        await self.get_ticket(tenant_id, ticket_id)
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(t.ratings).where(t.ratings.c.ticket_id == ticket_id))
            ).first()
        if row is None:
            return None
        return from_row(
            Rating, row, created_at=aware(row.created_at), updated_at=aware(row.updated_at)
        )

    async def rate_ticket(
        self, tenant_id: int, ticket_id: int, *, good: bool, comment: str
    ) -> Rating:
        """One rating per ticket, once it is resolved; it can be changed for seven days."""
        ticket = await self.get_ticket(tenant_id, ticket_id)
        if ticket.status not in CLOSED_STATUSES:
            raise Conflict("a ticket can be rated once it is resolved")
        existing = await self.get_rating(tenant_id, ticket_id)
        now = utcnow()
        if existing is not None and now - existing.created_at > RATING_CHANGE_WINDOW:
            raise Conflict("a rating can be changed for 7 days after it was given")
        inserted = False
        if existing is None:
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        t.ratings.insert().values(
                            ticket_id=ticket_id,
                            good=good,
                            comment=comment,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                inserted = True
            except IntegrityError:
                pass  # rated concurrently: update that rating instead
        if not inserted:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.ratings.update()
                    .where(t.ratings.c.ticket_id == ticket_id)
                    .values(good=good, comment=comment, updated_at=now)
                )
        self._bus.publish(Event("ticket.rated", tenant_id, {"ticket_id": ticket_id, "good": good}))
        rating = await self.get_rating(tenant_id, ticket_id)
        assert rating is not None
        return rating

    # ------------------------------------------------------------- attachments
    async def get_attachment(self, tenant_id: int, attachment_id: int) -> Attachment:
        a = t.attachments.c
        where = (a.tenant_id == tenant_id) & (a.id == attachment_id)
        return await self._one(
            t.attachments, where, lambda row: from_row(Attachment, row), "no such attachment"
        )
