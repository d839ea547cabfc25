"""The core contract: the only way routes reach a help desk backend.

`HelpdeskCore` is implemented by the embedded core (SQLAlchemy, the default) and, later, by a
remote core over HTTP. Every write takes an idempotency key so that a retried write never makes a
second row; reads that feed the search index take a `changed_since` cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


class NotFound(LookupError):
    """The object does not exist, or is not visible to the caller."""


class Conflict(ValueError):
    """The write clashes with existing data (e.g. a slug already taken)."""


@dataclass(frozen=True)
class Branding:
    name: str
    logo_url: str = ""
    primary_color: str = "#1f6feb"


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    logo_url: str = ""
    primary_color: str = "#1f6feb"
    default_locale: str = "en"
    domains: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def branding(self) -> Branding:
        return Branding(self.name, self.logo_url, self.primary_color)


@dataclass(frozen=True)
class Agent:
    id: int
    tenant_id: int
    email: str
    name: str
    role: str = "agent"  # "agent" or "admin"
    password_hash: str = ""


@dataclass(frozen=True)
class Organization:
    id: int
    tenant_id: int
    name: str
    domain: str = ""


@dataclass(frozen=True)
class Customer:
    id: int
    tenant_id: int
    email: str
    name: str = ""
    organization_id: int | None = None
    # When the customer first proved the address (followed a magic link, or typed its code);
    # None: never, so agents see the address as unverified.
    email_verified_at: datetime | None = None
    # The company's own id for this user, set by a signed widget identity; unique per tenant.
    external_id: str | None = None


@dataclass(frozen=True)
class Category:
    id: int
    tenant_id: int
    language: str
    slug: str
    name: str
    description: str = ""
    parent_id: int | None = None
    position: int = 0


@dataclass(frozen=True)
class Article:
    id: int
    tenant_id: int
    category_id: int | None
    language: str
    slug: str
    title: str
    body_md: str
    published: bool
    updated_at: datetime
    revision: int = 0
    views: int = 0


@dataclass(frozen=True)
class ArticleDraft:
    """What a writer supplies; (language, slug) identifies the article within a tenant."""

    language: str
    slug: str
    title: str
    body_md: str
    published: bool = True
    category_id: int | None = None


@dataclass(frozen=True)
class Feedback:
    article_id: int
    helpful: bool
    comment: str = ""


@dataclass(frozen=True)
class MissedSearch:
    query: str
    language: str
    count: int
    last_seen: datetime


@dataclass(frozen=True)
class FeedbackSummary:
    article_id: int
    title: str
    helpful: int
    not_helpful: int


@dataclass(frozen=True)
class Department:
    id: int
    tenant_id: int
    name: str


@dataclass(frozen=True)
class Choice:
    """One value of a choice field; `department_ids` empty means every department."""

    value: str
    label: str
    department_ids: tuple[int, ...] = ()


FIELD_TYPES = ("text", "textarea", "number", "date", "choice", "multichoice", "checkbox", "file")
STANDARD_FIELDS = ("name", "email", "subject", "description", "priority")


@dataclass(frozen=True)
class DeflectionSummary:
    """How often an article suggested on a form was opened, and how often no ticket followed."""

    article_id: int
    title: str
    opened: int
    without_ticket: int


@dataclass(frozen=True)
class Field:
    """A custom form field; shown for `department_ids` only (empty: every department)."""

    key: str
    label: str
    type: str  # one of FIELD_TYPES
    required: bool = False
    help_text: str = ""
    options: tuple[Choice, ...] = ()
    department_ids: tuple[int, ...] = ()

    def shown_for(self, department_id: int | None) -> bool:
        return not self.department_ids or department_id in self.department_ids

    def choices_for(self, department_id: int | None) -> tuple[Choice, ...]:
        return tuple(
            c for c in self.options if not c.department_ids or department_id in c.department_ids
        )


@dataclass(frozen=True)
class FormDraft:
    title: str
    department_id: int | None = None  # None: the visitor picks a department
    kind: str = "ticket"  # "ticket" or "task"
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Form:
    id: int
    tenant_id: int
    title: str
    department_id: int | None
    kind: str = "ticket"
    fields: tuple[Field, ...] = ()


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


OPEN_STATUSES = ("open", "pending")
CLOSED_STATUSES = ("resolved", "closed")
TICKET_STATUSES = OPEN_STATUSES + CLOSED_STATUSES
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class TicketPage:
    tickets: list[Ticket]
    total: int


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


# waiting: no agent has accepted yet; open: an agent accepted; closed: ended (by agent or visitor)
CONVERSATION_STATUSES = ("waiting", "open", "closed")


@dataclass(frozen=True)
class Conversation:
    id: int
    tenant_id: int
    status: str  # one of CONVERSATION_STATUSES
    created_at: datetime
    updated_at: datetime
    visitor_id: str = ""  # opaque id from the signed visitor token (not secret)
    customer_id: int | None = None
    assignee_agent_id: int | None = None
    assignee_name: str = ""
    ticket_id: int | None = None  # set once the conversation became a ticket
    visitor_name: str = ""
    visitor_email: str = ""
    # True only for the signed-in customer's own address, proved by a sign-in link.
    visitor_email_verified: bool = False
    subject: str = ""  # the first question, <= 200 chars
    last_message_id: int = 0  # highest public message id
    last_message_preview: str = ""  # first 120 chars of the last public message
    visitor_read_id: int = 0  # highest message id the visitor has read
    agent_read_id: int = 0  # highest message id an agent has read


@dataclass(frozen=True)
class ChatMessage:
    id: int
    conversation_id: int
    author_type: str  # "visitor", "agent", "system"
    body: str
    client_id: str
    created_at: datetime
    author_name: str = ""
    author_id: int | None = None
    internal: bool = False  # agent note: never sent to the visitor
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class CannedResponse:
    id: int
    tenant_id: int
    shortcut: str  # e.g. "hello"; unique per tenant
    body: str  # may hold placeholders like {{customer.name}}


SESSION_KINDS = ("agent", "customer")


@dataclass(frozen=True)
class Session:
    """A sign-in session kept by the core; the browser's cookie holds a token naming it."""

    id: str  # SHA-256 hex of the cookie's random token: the token itself is never stored
    tenant_id: int
    kind: str  # one of SESSION_KINDS
    subject_id: int  # the agent's or the customer's id
    expires_at: datetime
    created_at: datetime


WIDGET_KEY_ALGORITHMS = ("HS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class WidgetKey:
    """A key that may sign a tenant's widget identity tokens (JWT), named by the token's `kid`.

    HS256 keys hold a `secret` we made and showed once; ES256 and EdDSA keys hold the company's
    `public_key` (PEM), so it signs without sharing a secret with us."""

    id: int
    tenant_id: int
    kid: str
    alg: str  # one of WIDGET_KEY_ALGORITHMS
    created_at: datetime
    secret: str | None = None
    public_key: str | None = None


# Not from a core: the front says so when events of other processes may have gone unheard
# (after a hub outage), so that caches are dropped and indexes catch up.
EVENTS_RESUMED = "events.resumed"


@dataclass(frozen=True)
class Event:
    """Something that happened in the core that the front must react to."""

    # article.changed, category.changed, tenant.changed, ticket.created, ticket.replied,
    # chat.ticketed, ...
    type: str
    tenant_id: int
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class HelpdeskCore(Protocol):
    """The async protocol every core implements. Routes use nothing else."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    # tenants and branding
    async def create_tenant(
        self, slug: str, name: str, *, domains: tuple[str, ...] = ()
    ) -> Tenant: ...
    async def get_tenant(self, slug: str) -> Tenant: ...
    async def get_tenant_by_domain(self, domain: str) -> Tenant: ...
    async def list_tenants(self) -> list[Tenant]: ...
    async def update_branding(
        self, tenant_id: int, *, name: str, logo_url: str, primary_color: str
    ) -> Tenant: ...
    async def add_domain(self, tenant_id: int, domain: str) -> None: ...

    # agents
    async def create_agent(
        self, tenant_id: int, email: str, name: str, password_hash: str, role: str = "agent"
    ) -> Agent: ...
    async def get_agent_by_email(self, tenant_id: int, email: str) -> Agent: ...
    async def get_agent(self, tenant_id: int, agent_id: int) -> Agent: ...

    # knowledge base
    async def ensure_category(
        self,
        tenant_id: int,
        language: str,
        name: str,
        *,
        parent_id: int | None = None,
        slug: str = "",
    ) -> Category: ...
    async def update_category(
        self,
        tenant_id: int,
        category_id: int,
        *,
        name: str,
        description: str,
        parent_id: int | None,
        position: int,
    ) -> Category: ...
    async def delete_category(self, tenant_id: int, category_id: int) -> None: ...
    async def list_categories(
        self, tenant_id: int, language: str | None = None
    ) -> list[Category]: ...
    async def get_category(self, tenant_id: int, category_id: int) -> Category: ...
    async def get_category_by_slug(self, tenant_id: int, language: str, slug: str) -> Category: ...
    async def save_article(self, tenant_id: int, draft: ArticleDraft) -> Article: ...
    async def update_article(
        self, tenant_id: int, article_id: int, draft: ArticleDraft
    ) -> Article: ...
    async def get_article(self, tenant_id: int, article_id: int) -> Article: ...
    async def get_article_by_slug(self, tenant_id: int, language: str, slug: str) -> Article: ...
    async def list_articles(
        self,
        tenant_id: int,
        *,
        language: str | None = None,
        category_id: int | None = None,
        published_only: bool = True,
    ) -> list[Article]: ...
    async def translations(self, tenant_id: int, slug: str) -> list[Article]: ...
    async def articles_changed_since(
        self, tenant_id: int, cursor: int, limit: int = 1000
    ) -> tuple[list[Article], int]: ...
    async def most_viewed(self, tenant_id: int, language: str, limit: int = 5) -> list[Article]: ...
    async def add_article_views(self, tenant_id: int, views: dict[int, int]) -> None: ...
    async def record_feedback(
        self, tenant_id: int, feedback: Feedback, idempotency_key: str
    ) -> None: ...
    async def feedback_summary(self, tenant_id: int) -> list[FeedbackSummary]: ...
    async def record_missed_search(self, tenant_id: int, query: str, language: str) -> None: ...
    async def missed_searches(self, tenant_id: int, limit: int = 50) -> list[MissedSearch]: ...

    # departments and forms
    async def create_department(self, tenant_id: int, name: str) -> Department: ...
    async def list_departments(self, tenant_id: int) -> list[Department]: ...
    async def save_form(
        self, tenant_id: int, draft: FormDraft, form_id: int | None = None
    ) -> Form: ...
    async def get_form(self, tenant_id: int, form_id: int) -> Form: ...
    async def list_forms(self, tenant_id: int) -> list[Form]: ...
    async def delete_form(self, tenant_id: int, form_id: int) -> None: ...

    # customers and organizations
    async def ensure_customer(self, tenant_id: int, email: str, name: str = "") -> Customer: ...
    async def find_customer(self, tenant_id: int, email: str) -> Customer: ...
    async def get_customer(self, tenant_id: int, customer_id: int) -> Customer: ...
    async def create_organization(
        self, tenant_id: int, name: str, domain: str = ""
    ) -> Organization: ...
    async def set_customer_organization(
        self, tenant_id: int, customer_id: int, organization_id: int | None
    ) -> Customer: ...
    async def update_tenant_settings(self, tenant_id: int, changes: dict[str, Any]) -> Tenant: ...
    async def list_agents(self, tenant_id: int) -> list[Agent]: ...

    # tickets
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
    async def list_replies(
        self, tenant_id: int, ticket_id: int, *, include_internal: bool = False
    ) -> list[Reply]: ...
    async def set_ticket_status(
        self, tenant_id: int, ticket_id: int, status: str, *, agent_id: int | None = None
    ) -> Ticket: ...
    async def assign_ticket(
        self, tenant_id: int, ticket_id: int, agent_id: int | None
    ) -> Ticket: ...
    async def rate_ticket(
        self, tenant_id: int, ticket_id: int, *, good: bool, comment: str
    ) -> Rating: ...
    async def get_rating(self, tenant_id: int, ticket_id: int) -> Rating | None: ...
    async def get_attachment(self, tenant_id: int, attachment_id: int) -> Attachment: ...

    # deflection: articles suggested while a visitor wrote a ticket
    async def record_deflection(
        self, tenant_id: int, visit_key: str, article_id: int, query: str
    ) -> None: ...
    async def mark_visit_ticketed(self, tenant_id: int, visit_key: str) -> None: ...
    async def deflection_summary(self, tenant_id: int) -> list[DeflectionSummary]: ...

    # single-use signed tokens
    async def spend_token(self, token_id: str, expires_at: datetime) -> bool: ...

    # sign-in sessions (a retried create with the same id stores nothing new), and the proof of
    # a customer's address
    async def create_session(
        self, tenant_id: int, kind: str, subject_id: int, session_id: str, expires_at: datetime
    ) -> Session: ...
    async def get_session(self, tenant_id: int, session_id: str) -> Session | None: ...
    async def end_session(self, tenant_id: int, session_id: str) -> None: ...
    async def end_sessions(self, tenant_id: int, kind: str, subject_id: int) -> int: ...
    async def verify_customer_email(self, tenant_id: int, customer_id: int) -> None: ...

    # widget identity: the keys that sign a tenant's identity tokens (a taken kid is a
    # Conflict), and the customer a verified token names (found by external id, else the one
    # with that email and no external id yet, else a new one; the email counts as verified)
    async def list_widget_keys(self, tenant_id: int) -> list[WidgetKey]: ...
    async def add_widget_key(
        self, tenant_id: int, kid: str, alg: str, secret: str | None, public_key: str | None
    ) -> WidgetKey: ...
    async def delete_widget_key(self, tenant_id: int, key_id: int) -> None: ...
    async def identified_customer(
        self, tenant_id: int, external_id: str, email: str | None, name: str
    ) -> Customer: ...
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

    # messenger: conversations, chat messages, canned responses
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
    ) -> Conversation: ...
    async def get_conversation(self, tenant_id: int, conversation_id: int) -> Conversation: ...
    async def list_conversations(
        self,
        tenant_id: int,
        *,
        visitor_id: str | None = None,
        customer_id: int | None = None,
        status: str | None = None,
        assignee_agent_id: int | None = None,
        limit: int = 50,
    ) -> list[Conversation]: ...
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
    ) -> ChatMessage: ...
    async def chat_messages(
        self,
        tenant_id: int,
        conversation_id: int,
        *,
        after_id: int = 0,
        limit: int = 500,
        include_internal: bool = False,
    ) -> list[ChatMessage]: ...
    async def assign_conversation(
        self, tenant_id: int, conversation_id: int, agent_id: int | None
    ) -> Conversation: ...
    async def set_conversation_status(
        self, tenant_id: int, conversation_id: int, status: str
    ) -> Conversation: ...
    async def mark_conversation_read(
        self, tenant_id: int, conversation_id: int, *, reader: str, message_id: int
    ) -> Conversation: ...
    async def update_conversation_contact(
        self, tenant_id: int, conversation_id: int, *, name: str = "", email: str = ""
    ) -> Conversation: ...
    async def conversation_to_ticket(self, tenant_id: int, conversation_id: int) -> Ticket: ...
    async def list_canned_responses(self, tenant_id: int) -> list[CannedResponse]: ...
    async def save_canned_response(
        self, tenant_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse: ...
    async def delete_canned_response(self, tenant_id: int, response_id: int) -> None: ...

    # events
    def events(self) -> AsyncIterator[Event]: ...
