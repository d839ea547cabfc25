"""The remote core's write paths through the outbox, as domain objects the routes already use.

`outbox_core(remote, outbox)` is the HelpdeskCore of an edge on a remote core: its tickets, kb
and forms domains store each write in the outbox first (`Outbox.submit`) and answer with the
core's own answer when it came in time, else with a stand-in carrying the local reference:
`PendingTicket` (negative id: minus the row's), `PendingReply`, or what the write returns
anyway (a rating as given, None). Reads pass through, and the customer's ticket list and a
ticket's replies get the items still in the outbox merged in, marked as sending.
Everything else is the remote core's domain object itself (`__getattr__`).

While the core does not answer, a customer's ticket reads (`get_ticket`, `list_tickets`,
`list_replies`, `get_rating`) give the last answer this process had for the same question
(`last_answers.py`, which also keeps the customer and a visitor's chat reads), so a signed-in
customer can still open a ticket and reply (the reply goes to the outbox) during an outage
instead of getting an error page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from portal.core.contract import (
    ChatDomain,
    CustomersDomain,
    Feedback,
    FormsDomain,
    HelpdeskCore,
    KnowledgeBaseDomain,
    NotFound,
    Rating,
    Reply,
    ReplyDraft,
    Ticket,
    TicketDraft,
    TicketPage,
    TicketsDomain,
)
from portal.core.remote.client import CoreUnavailable
from portal.core.remote.core import RemoteCore
from portal.edge.outbox.last_answers import (
    LastAnswerChat,
    LastAnswerCustomers,
    LastAnswers,
    Passthrough,
)
from portal.edge.outbox.outbox import Outbox, Queued, decode_args, encode_args
from portal.edge.outbox.rows import PENDING, SENT, NewRow, Row, now


@dataclass(frozen=True)
class PendingTicket(Ticket):
    """A ticket still in the outbox (`sending`) or set aside; `id` is minus the row's id."""

    reference: str = ""
    sending: bool = True


@dataclass(frozen=True)
class PendingReply(Reply):
    """A reply still in the outbox; `id` is minus the row's id."""

    reference: str = ""
    sending: bool = True


def pending_reference(item: object) -> str:
    """The local reference of an item the core has not confirmed yet; "" for the core's own."""
    return item.reference if isinstance(item, PendingTicket | PendingReply) else ""


def _visit_stream(tenant_id: int, visit_key: str) -> str:
    return f"visit:{tenant_id}:{visit_key}"[:80]


def _solo_stream(kind: str) -> str:
    return f"{kind}:{uuid.uuid4().hex}"  # a write nothing else waits on, nor it on anything


class _Passthrough(Passthrough):
    def __init__(self, inner: Any, outbox: Outbox) -> None:
        super().__init__(inner)
        self._outbox = outbox


def _pending_ticket(row: Row) -> PendingTicket:
    draft: TicketDraft = decode_args(row.domain, row.method, row.args)["draft"]
    return PendingTicket(
        id=-row.id,
        tenant_id=row.tenant_id,
        number=0,
        subject=draft.subject,
        status="open",
        priority=draft.priority,
        customer_id=row.customer_id or 0,
        organization_id=None,
        created_at=row.created_at,
        updated_at=row.created_at,
        kind=draft.kind,
        department_id=draft.department_id,
        requester_email=draft.requester_email,
        requester_name=draft.requester_name,
        custom_fields=dict(draft.custom_fields),
        reference=row.reference,
        sending=row.state == PENDING,
    )


def _pending_reply(row: Row, ticket_id: int) -> PendingReply:
    draft: ReplyDraft = decode_args(row.domain, row.method, row.args)["draft"]
    return PendingReply(
        id=-row.id,
        ticket_id=ticket_id,
        author_type=draft.author_type,
        author_name="",
        body=draft.body,
        internal=draft.internal,
        created_at=row.created_at,
        reference=row.reference,
        sending=row.state == PENDING,
    )


class OutboxTickets(_Passthrough):
    def __init__(
        self, inner: TicketsDomain, outbox: Outbox, customers: CustomersDomain, last: LastAnswers
    ) -> None:
        super().__init__(inner, outbox)
        self._customers = customers
        self._last = last

    async def get_rating(self, tenant_id: int, ticket_id: int) -> Rating | None:
        if ticket_id < 0:
            return None
        rating: Rating | None = await self._last.read(
            ("rating", tenant_id, ticket_id), lambda: self._inner.get_rating(tenant_id, ticket_id)
        )
        return rating

    async def create_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> Ticket:
        args = {"tenant_id": tenant_id, "draft": draft, "idempotency_key": idempotency_key}
        # A ticket from a form visit whose opened suggestions went through this outbox follows
        # them in their stream: the core marks what it has already recorded.
        stream = f"ticket:{tenant_id}:new:{uuid.uuid4().hex}"
        if draft.visit_key:
            visit = _visit_stream(tenant_id, draft.visit_key)
            stream = visit if await self._outbox.store.has_stream(visit) else stream
        outcome = await self._outbox.submit(
            NewRow(
                tenant_id=tenant_id,
                kind="ticket",
                domain="tickets",
                method="create_ticket",
                stream=stream,
                args=encode_args("tickets", "create_ticket", args),
                idempotency_key=idempotency_key,
                email=draft.requester_email.strip().lower(),
            )
        )
        if isinstance(outcome, Queued):
            return _pending_ticket(outcome.row)
        ticket: Ticket = outcome.value
        return ticket

    async def _stream_of(self, tenant_id: int, ticket_id: int) -> tuple[str, int | None, int]:
        """(stream, parent row id, ticket id as the row keeps it) for a write on a ticket."""
        store = self._outbox.store
        if ticket_id >= 0:
            stream = await store.ticket_stream(tenant_id, ticket_id)
            return stream or f"ticket:{tenant_id}:{ticket_id}", None, ticket_id
        parent = await store.get(-ticket_id)
        if parent is None or parent.tenant_id != tenant_id or parent.kind != "ticket":
            raise NotFound(f"ticket {ticket_id} does not exist")
        if parent.state == SENT and parent.ticket_id is not None:
            return await self._stream_of(tenant_id, parent.ticket_id)
        return parent.stream, parent.id, ticket_id

    async def add_reply(
        self, tenant_id: int, ticket_id: int, draft: ReplyDraft, idempotency_key: str
    ) -> Reply:
        stream, parent_id, ticket_id = await self._stream_of(tenant_id, ticket_id)
        args = {
            "tenant_id": tenant_id,
            "ticket_id": max(ticket_id, 0),  # filled in from the parent when it is sent
            "draft": draft,
            "idempotency_key": idempotency_key,
        }
        outcome = await self._outbox.submit(
            NewRow(
                tenant_id=tenant_id,
                kind="reply",
                domain="tickets",
                method="add_reply",
                stream=stream,
                args=encode_args("tickets", "add_reply", args),
                idempotency_key=idempotency_key,
                parent_id=parent_id,
                ticket_id=ticket_id if ticket_id >= 0 else None,
                customer_id=draft.author_id if draft.author_type == "customer" else None,
            )
        )
        if isinstance(outcome, Queued):
            return _pending_reply(outcome.row, ticket_id)
        reply: Reply = outcome.value
        return reply

    async def rate_ticket(
        self, tenant_id: int, ticket_id: int, *, good: bool, comment: str
    ) -> Rating:
        stream, parent_id, ticket_id = await self._stream_of(tenant_id, ticket_id)
        args: dict[str, Any] = {"tenant_id": tenant_id, "ticket_id": max(ticket_id, 0)}
        args.update(good=good, comment=comment)
        outcome = await self._outbox.submit(
            NewRow(
                tenant_id=tenant_id,
                kind="rating",
                domain="tickets",
                method="rate_ticket",
                stream=stream,
                args=encode_args("tickets", "rate_ticket", args),
                idempotency_key=uuid.uuid4().hex,
                parent_id=parent_id,
                ticket_id=ticket_id if ticket_id >= 0 else None,
            )
        )
        if isinstance(outcome, Queued):
            moment = now()
            return Rating(ticket_id, good, comment, moment, moment)
        rating: Rating = outcome.value
        return rating

    async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket:
        if ticket_id >= 0:
            ticket: Ticket = await self._last.read(
                ("ticket", tenant_id, ticket_id),
                lambda: self._inner.get_ticket(tenant_id, ticket_id),
            )
            return ticket
        row = await self._outbox.store.get(-ticket_id)
        if row is None or row.tenant_id != tenant_id or row.kind != "ticket":
            raise NotFound(f"ticket {ticket_id} does not exist")
        if row.state == SENT and row.ticket_id is not None:
            found: Ticket = await self._inner.get_ticket(tenant_id, row.ticket_id)
            return found
        return _pending_ticket(row)

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
        page: TicketPage = await self._last.read(
            ("list", tenant_id, customer_id, organization_id, state, query, offset, limit),
            lambda: self._inner.list_tickets(
                tenant_id,
                customer_id=customer_id,
                organization_id=organization_id,
                state=state,
                query=query,
                offset=offset,
                limit=limit,
            ),
        )
        # Pending tickets head the first page of a customer's own open (or all) tickets.
        if customer_id is None or offset or query or state not in (None, "open"):
            return page
        store = self._outbox.store
        if not await store.has_unsent(tenant_id):
            return page
        rows = await store.unsent(tenant_id, kind="ticket")
        if not rows:
            return page
        try:
            customer = await self._customers.get_customer(tenant_id, customer_id)
            email = customer.email.strip().lower()
        except CoreUnavailable:  # never read before the outage: match by id alone
            email = ""
        mine = [
            _pending_ticket(row)
            for row in reversed(rows)  # newest first, as the core lists
            if row.customer_id == customer_id or (row.email and row.email == email)
        ]
        if not mine:
            return page
        return TicketPage(mine + list(page.tickets), page.total + len(mine))

    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]:
        store = self._outbox.store
        if ticket_id < 0:
            row = await store.get(-ticket_id)
            if row is None or row.tenant_id != tenant_id or row.kind != "ticket":
                raise NotFound(f"ticket {ticket_id} does not exist")
            if row.state == SENT and row.ticket_id is not None:
                return await self.list_replies(
                    tenant_id, row.ticket_id, include_internal=include_internal
                )
            rows = await store.unsent(tenant_id, kind="reply", parent_id=row.id)
            return [_pending_reply(r, ticket_id) for r in rows]
        replies: list[Reply] = await self._last.read(
            ("replies", tenant_id, ticket_id, include_internal),
            lambda: self._inner.list_replies(
                tenant_id, ticket_id, include_internal=include_internal
            ),
        )
        if await store.has_unsent(tenant_id):
            rows = await store.unsent(tenant_id, kind="reply", ticket_id=ticket_id)
            replies = replies + [
                _pending_reply(r, ticket_id)
                for r in rows
                if include_internal or not r.args["draft"].get("internal")
            ]
        return replies


class OutboxKnowledgeBase(_Passthrough):
    async def record_feedback(
        self, tenant_id: int, feedback: Feedback, idempotency_key: str
    ) -> None:
        args = {"tenant_id": tenant_id, "feedback": feedback, "idempotency_key": idempotency_key}
        await self._outbox.submit(
            NewRow(
                tenant_id=tenant_id,
                kind="feedback",
                domain="kb",
                method="record_feedback",
                stream=_solo_stream("feedback"),
                args=encode_args("kb", "record_feedback", args),
                idempotency_key=idempotency_key,
            )
        )


class OutboxForms(_Passthrough):
    async def record_deflection(
        self, tenant_id: int, visit_key: str, article_id: int, query: str
    ) -> None:
        # A visit's suggestions opened and the ticket it sends share a stream (`create_ticket`):
        # the ticket's mark reaches the core after what it marks. Every suggestion opened goes
        # through this edge's outbox (kept two days, far longer than a visit).
        args: dict[str, Any] = {"tenant_id": tenant_id, "visit_key": visit_key}
        args.update(article_id=article_id, query=query)
        await self._outbox.submit(
            NewRow(
                tenant_id=tenant_id,
                kind="deflection",
                domain="forms",
                method="record_deflection",
                stream=_visit_stream(tenant_id, visit_key),
                args=encode_args("forms", "record_deflection", args),
                idempotency_key=uuid.uuid4().hex,
            )
        )


def outbox_core(remote: RemoteCore, outbox: Outbox) -> HelpdeskCore:
    """The remote core (started: its capabilities known) with its writes through `outbox`."""
    last = LastAnswers()
    outbox.on_accepted(last.replied)
    customers = cast(CustomersDomain, LastAnswerCustomers(remote.customers, last))
    return HelpdeskCore(
        tenants=remote.tenants,
        kb=cast(KnowledgeBaseDomain, OutboxKnowledgeBase(remote.kb, outbox)),
        customers=customers,
        tickets=cast(TicketsDomain, OutboxTickets(remote.tickets, outbox, customers, last)),
        forms=cast(FormsDomain, OutboxForms(remote.forms, outbox)),
        chat=cast(ChatDomain, LastAnswerChat(remote.chat, last)),
        capabilities=remote.capabilities,
        backends=remote.backends,
    )


__all__ = ["PendingReply", "PendingTicket", "outbox_core", "pending_reference"]
