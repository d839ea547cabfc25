"""Tickets, their replies (with attachments) and their ratings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class AttachmentDraft:
    """A file the front has stored already; `storage_key` names it in the attachment store."""

    filename: str
    content_type: str
    size: int
    storage_key: str


@dataclass(frozen=True)
class Attachment:
    id: int
    tenant_id: int
    ticket_id: int | None
    reply_id: int | None
    filename: str
    content_type: str
    size: int
    storage_key: str
    message_id: int | None = None  # set for a file sent in a chat message


@dataclass(frozen=True)
class TicketDraft:
    subject: str
    description: str
    requester_email: str
    requester_name: str = ""
    priority: str = "normal"
    kind: str = "ticket"
    department_id: int | None = None
    custom_fields: dict[str, Any] = field(default_factory=dict)
    source: str = "web"
    attachments: tuple[AttachmentDraft, ...] = ()
    # The form visit it was sent from (its form token's key), or "": the suggestions opened in
    # that visit (`FormsDomain.record_deflection`) are marked as followed by a ticket, with the
    # ticket and only if it is made.
    visit_key: str = ""


OPEN_STATUSES = ("open", "pending")
CLOSED_STATUSES = ("resolved", "closed")
TICKET_STATUSES = OPEN_STATUSES + CLOSED_STATUSES
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Ticket:
    id: int
    tenant_id: int
    number: int
    subject: str
    status: str
    priority: str
    customer_id: int
    organization_id: int | None
    created_at: datetime
    updated_at: datetime
    kind: str = "ticket"
    department_id: int | None = None
    assignee_agent_id: int | None = None
    assignee_name: str = ""
    requester_email: str = ""
    requester_name: str = ""
    custom_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class TicketPage:
    tickets: list[Ticket]
    total: int


@dataclass(frozen=True, kw_only=True)
class ReplyDraft:
    """A reply to write on a ticket; `author_id` is a customer's or an agent's id."""

    author_type: str  # "customer" or "agent"
    author_id: int
    body: str
    internal: bool  # an agent's note, never shown to the customer: always said, never assumed
    attachments: tuple[AttachmentDraft, ...] = ()


@dataclass(frozen=True)
class Reply:
    id: int
    ticket_id: int
    author_type: str  # "customer" or "agent"
    author_name: str
    body: str
    internal: bool
    created_at: datetime
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class Rating:
    ticket_id: int
    good: bool
    comment: str
    created_at: datetime
    updated_at: datetime


@runtime_checkable
class TicketsDomain(Protocol):
    """`core.tickets`; ratings and attachments only where `capabilities` says so."""

    async def create_ticket(
        self, tenant_id: int, draft: TicketDraft, idempotency_key: str
    ) -> Ticket: ...
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
    ) -> TicketPage: ...
    async def get_ticket(self, tenant_id: int, ticket_id: int) -> Ticket: ...
    async def set_ticket_status(
        self, tenant_id: int, ticket_id: int, status: str, *, agent_id: int | None = None
    ) -> Ticket: ...
    async def assign_ticket(
        self, tenant_id: int, ticket_id: int, agent_id: int | None
    ) -> Ticket: ...

    async def add_reply(
        self, tenant_id: int, ticket_id: int, draft: ReplyDraft, idempotency_key: str
    ) -> Reply: ...
    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]: ...

    async def rate_ticket(
        self, tenant_id: int, ticket_id: int, *, good: bool, comment: str
    ) -> Rating: ...
    async def get_rating(self, tenant_id: int, ticket_id: int) -> Rating | None: ...
    async def get_attachment(self, tenant_id: int, attachment_id: int) -> Attachment: ...
