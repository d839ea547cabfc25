"""The core contract: the only way routes reach a help desk backend.

A backend serves the domains the apps need, each a narrow protocol: `tenants` (and agents), `kb`,
`customers`, `tickets`, `forms`, `chat`. `HelpdeskCore` combines one object per domain, so one
backend can serve some domains and another the rest (a third-party help desk has tickets but may
have no chat), and says through `capabilities` which optional features are there. The embedded
core (SQLAlchemy, the default) is one such assembly; a remote core over HTTP will be another.

Every write takes an idempotency key so that a retried write never makes a second row; reads
that feed the search index take a `changed_since` cursor. The data model lives in one module per
domain and is re-exported here: `from portal.core.contract import Ticket` is the way to import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol

from portal.core.contract.capabilities import Capabilities
from portal.core.contract.chat import (
    CONVERSATION_STATUSES,
    CannedResponse,
    ChatDomain,
    ChatMessage,
    Conversation,
    MessageDraft,
)
from portal.core.contract.customers import (
    SESSION_KINDS,
    WIDGET_KEY_ALGORITHMS,
    Customer,
    CustomersDomain,
    Organization,
    Session,
    WidgetKey,
)
from portal.core.contract.errors import Conflict, NotFound
from portal.core.contract.events import EVENTS_RESUMED, Event
from portal.core.contract.forms import (
    FIELD_TYPES,
    STANDARD_FIELDS,
    Choice,
    DeflectionSummary,
    Department,
    Field,
    Form,
    FormDraft,
    FormsDomain,
)
from portal.core.contract.kb import (
    Article,
    ArticleDraft,
    Category,
    Feedback,
    FeedbackSummary,
    KnowledgeBaseDomain,
    MissedSearch,
)
from portal.core.contract.tenants import Agent, Branding, Tenant, TenantsDomain
from portal.core.contract.tickets import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    PRIORITIES,
    TICKET_STATUSES,
    Attachment,
    AttachmentDraft,
    Rating,
    Reply,
    ReplyDraft,
    Ticket,
    TicketDraft,
    TicketPage,
    TicketsDomain,
)

__all__ = [
    "CLOSED_STATUSES",
    "CONVERSATION_STATUSES",
    "DOMAINS",
    "EVENTS_RESUMED",
    "FIELD_TYPES",
    "OPEN_STATUSES",
    "PRIORITIES",
    "SESSION_KINDS",
    "STANDARD_FIELDS",
    "TICKET_STATUSES",
    "WIDGET_KEY_ALGORITHMS",
    "Agent",
    "Article",
    "ArticleDraft",
    "Attachment",
    "AttachmentDraft",
    "Backend",
    "Branding",
    "CannedResponse",
    "Capabilities",
    "Category",
    "ChatDomain",
    "ChatMessage",
    "Choice",
    "Conflict",
    "Conversation",
    "Customer",
    "CustomersDomain",
    "DeflectionSummary",
    "Department",
    "Event",
    "Feedback",
    "FeedbackSummary",
    "Field",
    "Form",
    "FormDraft",
    "FormsDomain",
    "HelpdeskCore",
    "KnowledgeBaseDomain",
    "MessageDraft",
    "MissedSearch",
    "NotFound",
    "Organization",
    "Rating",
    "Reply",
    "ReplyDraft",
    "Session",
    "Tenant",
    "TenantsDomain",
    "Ticket",
    "TicketDraft",
    "TicketPage",
    "TicketsDomain",
    "Unavailable",
    "WidgetKey",
]

# HelpdeskCore's attribute for each domain, and the protocol its object follows.
DOMAINS: dict[str, type] = {
    "tenants": TenantsDomain,
    "kb": KnowledgeBaseDomain,
    "customers": CustomersDomain,
    "tickets": TicketsDomain,
    "forms": FormsDomain,
    "chat": ChatDomain,
}


class Backend(Protocol):
    """What stands behind domain objects: started before use, closed after, a source of events.

    Events from the core (agent reply, status change, article published) arrive as `Event`s; the
    embedded core emits them in-process, a remote core by signed webhook with a pull feed.
    """

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def events(self) -> AsyncIterator[Event]: ...

    async def ping(self) -> None:
        """Raise unless the backend answers a cheap call (for `/readyz`); a backend that has
        no such call returns at once, and counts as reachable."""
        ...


class Unavailable:
    """Stands in for a domain a backend does not have (e.g. `chat=Unavailable("chat")`).

    The apps do not call it while `capabilities` says the feature is missing; should one call
    slip through, it answers NotFound, which the apps already turn into a 404 page.
    """

    def __init__(self, domain: str) -> None:
        self.domain = domain

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise NotFound(f"this help desk has no {self.domain} ({name})")

        return unavailable


class HelpdeskCore:
    """A help desk as the apps see it: one object per domain, and what the backends can do.

    Assemble one from domain objects of one backend (the embedded core builds its own) or of
    several (a remote help desk's tickets beside the embedded knowledge base). `backends` stand
    behind those objects: started in order, closed in reverse order, their events merged.
    """

    def __init__(
        self,
        *,
        tenants: TenantsDomain,
        kb: KnowledgeBaseDomain,
        customers: CustomersDomain,
        tickets: TicketsDomain,
        forms: FormsDomain,
        chat: ChatDomain,
        capabilities: Capabilities | None = None,
        backends: Sequence[Backend] = (),
    ) -> None:
        self.tenants = tenants
        self.kb = kb
        self.customers = customers
        self.tickets = tickets
        self.forms = forms
        self.chat = chat
        self.capabilities = capabilities or Capabilities()
        self.backends = tuple(backends)

    async def start(self) -> None:
        for backend in self.backends:
            await backend.start()

    async def close(self) -> None:
        for backend in reversed(self.backends):
            await backend.close()

    async def ping(self) -> None:
        """Raise unless every backend answers a cheap call (readiness checks: `/readyz`)."""
        await asyncio.gather(*(backend.ping() for backend in self.backends))

    def events(self) -> AsyncIterator[Event]:
        """Every backend's events, in the order they arrive."""
        streams = [backend.events() for backend in self.backends]
        return streams[0] if len(streams) == 1 else _merged(streams)


async def _merged(streams: list[AsyncIterator[Event]]) -> AsyncIterator[Event]:
    queue: asyncio.Queue[Event | Exception] = asyncio.Queue()

    async def pump(stream: AsyncIterator[Event]) -> None:
        try:
            async for event in stream:
                queue.put_nowait(event)
        except Exception as exc:  # a failed feed must fail the listener, not go quiet
            queue.put_nowait(exc)

    tasks = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        while True:
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
