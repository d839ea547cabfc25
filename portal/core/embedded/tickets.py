"""The embedded core's tickets domain: tickets, replies, ratings and attachments."""

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
from portal.core.embedded.engine import CoreConnection, CoreEngine
from portal.core.embedded.rows import (
    aware,
    from_row,
    insert_attachments,
    inserted_id,
    require_in_tenant,
    utcnow,
)
from portal.core.embedded.ticket_queries import TICKET_SELECT, ticket_list_statements

RATING_CHANGE_WINDOW = timedelta(days=7)


class EmbeddedTickets(EmbeddedDomain):
    """`core.tickets` of the embedded core; requesters are customers of `customers`."""

    def __init__(self, engine: CoreEngine, bus: EventBus, customers: EmbeddedCustomers) -> None:
        super().__init__(engine, bus)
        self._customers = customers

    # ----------------------------------------------------------------- tickets
    @staticmethod
    def _ticket(row: Any) -> Ticket:
        return from_row(
            Ticket,
            row,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            custom_fields=dict(row.custom_fields or {}),
        )

    async def _ticket_where(self, where: Any) -> Ticket | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(TICKET_SELECT.where(where))).first()
        return self._ticket(row) if row is not None else None

    async def _ticket_by_key(self, tenant_id: int, idempotency_key: str) -> Ticket | None:
        c = t.tickets.c
        return await self._ticket_where(
            (c.tenant_id == tenant_id) & (c.idempotency_key == idempotency_key)
        )

    async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket:
        c = t.tickets.c
        ticket = await self._ticket_where((c.tenant_id == tenant_id) & (c.id == ticket_id))
        if ticket is None:
            raise NotFound("no such ticket")
        return ticket

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
            total = (await conn.execute(count, params)).scalar_one()
            rows = (await conn.execute(page, params)).all() if total > offset else []
        return TicketPage([self._ticket(row) for row in rows], total)

    async def create_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> Ticket:
        existing = await self._ticket_by_key(tenant_id, idempotency_key)
        if existing is not None:
            return existing
        # Two concurrent tickets may pick the same number; the unique constraint decides and the
        # loser tries again with the next one.
        for _attempt in range(10):
            try:
                await self._insert_ticket(tenant_id, draft, idempotency_key)
                break
            except IntegrityError:
                raced = await self._ticket_by_key(tenant_id, idempotency_key)
                if raced is not None:
                    return raced
        else:
            raise Conflict("could not allocate a ticket number; try again")
        ticket = await self._ticket_by_key(tenant_id, idempotency_key)
        assert ticket is not None
        self._bus.publish(Event("ticket.created", tenant_id, {"ticket_id": ticket.id}))
        return ticket

    async def _insert_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> None:
        now = utcnow()
        customer_id = await self._customers.ensure_customer_id(
            tenant_id, draft.requester_email, draft.requester_name
        )
        async with self.engine.begin() as conn:
            await require_in_tenant(
                conn, t.departments, tenant_id, draft.department_id, "no such department"
            )
            organization_id = (
                await conn.execute(
                    sa.select(t.customers.c.organization_id).where(t.customers.c.id == customer_id)
                )
            ).scalar()
            number = (
                await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(t.tickets.c.number), 0)).where(
                        t.tickets.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one() + 1
            result = await conn.execute(
                t.tickets.insert().values(
                    tenant_id=tenant_id,
                    number=number,
                    customer_id=customer_id,
                    organization_id=organization_id,
                    department_id=draft.department_id,
                    subject=draft.subject,
                    kind=draft.kind,
                    status="open",
                    priority=draft.priority,
                    source=draft.source,
                    custom_fields=draft.custom_fields,
                    idempotency_key=idempotency_key,
                    created_at=now,
                    updated_at=now,
                )
            )
            ticket_id = inserted_id(result)
            reply = await conn.execute(
                t.ticket_replies.insert().values(
                    ticket_id=ticket_id,
                    author_type="customer",
                    author_id=customer_id,
                    body=draft.description,
                    internal=False,
                    idempotency_key=f"{idempotency_key}:description",
                    created_at=now,
                )
            )
            await insert_attachments(
                conn,
                tenant_id,
                draft.attachments,
                ticket_id=ticket_id,
                reply_id=inserted_id(reply),
            )

    async def add_reply(
        self, tenant_id: int, ticket_id: int, draft: ReplyDraft, idempotency_key: str
    ) -> Reply:
        r = t.ticket_replies.c
        key = (r.ticket_id == ticket_id) & (r.idempotency_key == idempotency_key)
        created = False
        try:
            async with self.engine.begin() as conn:
                ticket = (
                    await conn.execute(
                        sa.select(t.tickets.c.id, t.tickets.c.status)
                        .where(t.tickets.c.id == ticket_id)
                        .where(t.tickets.c.tenant_id == tenant_id)
                    )
                ).first()
                if ticket is None:
                    raise NotFound("no such ticket")
                existing = (await conn.execute(sa.select(r.id).where(key))).first()
                if existing is None:
                    reply_id = await self._insert_reply(
                        conn, tenant_id, ticket.status, ticket_id, draft, idempotency_key
                    )
                    created = True
                else:
                    reply_id = existing.id
        except IntegrityError:
            # The same key sent twice at once: the other request stored it; answer with that.
            async with self.engine.connect() as conn:
                found = (await conn.execute(sa.select(r.id).where(key))).first()
            if found is None:
                raise
            reply_id, created = found.id, False
        if created:
            self._bus.publish(
                Event(
                    "ticket.replied",
                    tenant_id,
                    {
                        "ticket_id": ticket_id,
                        "reply_id": reply_id,
                        "internal": draft.internal,
                        "author_type": draft.author_type,
                    },
                )
            )
        replies = await self.list_replies(tenant_id, ticket_id, include_internal=True)
        return next(reply for reply in replies if reply.id == reply_id)

    async def _insert_reply(
        self,
        conn: CoreConnection,
        tenant_id: int,
        status: str,
        ticket_id: int,
        draft: ReplyDraft,
        idempotency_key: str,
    ) -> int:
        now = utcnow()
        result = await conn.execute(
            t.ticket_replies.insert().values(
                ticket_id=ticket_id,
                author_type=draft.author_type,
                author_id=draft.author_id,
                body=draft.body,
                internal=draft.internal,
                idempotency_key=idempotency_key,
                created_at=now,
            )
        )
        reply_id: int = inserted_id(result)
        await insert_attachments(
            conn, tenant_id, draft.attachments, ticket_id=ticket_id, reply_id=reply_id
        )
        changes: dict[str, Any] = {"updated_at": now}
        # A customer writing on a resolved ticket opens it again, as help desks do.
        if draft.author_type == "customer" and not draft.internal and status in CLOSED_STATUSES:
            changes["status"] = "open"
        await conn.execute(t.tickets.update().where(t.tickets.c.id == ticket_id).values(**changes))
        return reply_id

    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]:
        r, cu, ag = t.ticket_replies.c, t.customers, t.agents
        await self.get_ticket(tenant_id, ticket_id)
        query = (
            sa.select(
                t.ticket_replies,
                sa.func.coalesce(
                    sa.case((r.author_type == "agent", ag.c.name), else_=None),
                    sa.func.nullif(cu.c.name, ""),
                    cu.c.email,
                    "",
                ).label("author_name"),
            )
            .select_from(
                t.ticket_replies.outerjoin(
                    cu, (r.author_type == "customer") & (cu.c.id == r.author_id)
                ).outerjoin(ag, (r.author_type == "agent") & (ag.c.id == r.author_id))
            )
            .where(r.ticket_id == ticket_id)
            .order_by(r.created_at, r.id)
        )
        if not include_internal:
            query = query.where(r.internal.is_(False))
        a = t.attachments.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            files: dict[int, list[Attachment]] = defaultdict(list)
            for row in await conn.execute(
                sa.select(t.attachments).where(a.ticket_id == ticket_id).order_by(a.id)
            ):
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
