"""Live chat: conversations, their messages, and agents' canned responses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from portal.core.contract.tickets import Attachment, AttachmentDraft, Ticket

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


@dataclass(frozen=True, kw_only=True)
class MessageDraft:
    """A chat message to store; its `client_id` is its idempotency key within the conversation.

    A resend with the same client id stores nothing new and answers with the stored message.
    """

    author_type: str  # "visitor", "agent", "system"
    author_id: int | None
    author_name: str
    body: str
    client_id: str
    internal: bool = False  # agent note: never sent to the visitor
    attachments: tuple[AttachmentDraft, ...] = ()


@dataclass(frozen=True)
class ChatPost:
    """One message of a batch for `post_chat_messages`: where it goes, and what it is."""

    tenant_id: int
    conversation_id: int
    draft: MessageDraft


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


# What `post_chat_messages` answers for each message: stored (a resend: the one stored first)
# with its conversation after it, or the error that refused it (NotFound, Conflict: nothing of it
# was stored) or kept it from being finished (any other: sending it again finishes it).
PostOutcome = tuple[ChatMessage, Conversation] | Exception


@runtime_checkable
class ChatDomain(Protocol):
    """`core.chat`, present where `capabilities.chat` says so."""

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
        created_before: datetime | None = None,
        limit: int = 50,
    ) -> list[Conversation]: ...
    async def assign_conversation(
        self, tenant_id: int, conversation_id: int, agent_id: int | None
    ) -> Conversation: ...
    async def set_conversation_status(
        self, tenant_id: int, conversation_id: int, status: str
    ) -> Conversation: ...
    async def mark_conversation_read(
        self, tenant_id: int, conversation_id: int, *, reader: str, message_id: int
    ) -> Conversation: ...
    async def mark_conversations_read(
        self, tenant_id: int, *, reader: str, up_to: Mapping[int, int]
    ) -> dict[int, int]:
        """`mark_conversation_read` for many conversations (id -> message id) at once, as read
        receipts come in batches; each one's marker after it. Conversations not of the tenant
        are left out."""
        ...

    async def update_conversation_contact(
        self, tenant_id: int, conversation_id: int, *, name: str = "", email: str = ""
    ) -> Conversation: ...
    async def conversation_to_ticket(self, tenant_id: int, conversation_id: int) -> Ticket: ...

    async def add_chat_message(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> ChatMessage: ...
    async def post_chat_message(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> tuple[ChatMessage, Conversation]:
        """`add_chat_message`, with the conversation as it is after the message: what the
        messenger fans out, without reading it again."""
        ...

    async def post_chat_messages(self, posts: Sequence[ChatPost]) -> list[PostOutcome]:
        """`post_chat_message` for several messages (of any tenants and conversations) at once,
        as the messenger gathers those of a moment; one outcome per post, in their order. Each
        comes with its conversation as the batch left it.

        A refused message does not keep the others from being stored. An error in storing them
        raises, and then none of them was stored. Within a conversation, the messages are stored
        in the order given."""
        ...

    async def chat_messages(
        self,
        tenant_id: int,
        conversation_id: int,
        *,
        after_id: int = 0,
        limit: int = 500,
        include_internal: bool = False,
    ) -> list[ChatMessage]: ...

    async def list_canned_responses(self, tenant_id: int) -> list[CannedResponse]: ...
    async def save_canned_response(
        self, tenant_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse: ...
    async def delete_canned_response(self, tenant_id: int, response_id: int) -> None: ...
