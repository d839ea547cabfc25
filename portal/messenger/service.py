"""The messenger's actions: store through the core first, then tell every process by the hub.

Both sockets (visitor and agent) and the background watcher act through `Messenger`, so the
rule "stored before fanned out" lives in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from portal.core.contract import (
    AttachmentDraft,
    ChatMessage,
    Conflict,
    Conversation,
    HelpdeskCore,
    MessageDraft,
    NotFound,
    Tenant,
)
from portal.hub import Frame, Hub
from portal.mail import Mailer
from portal.messenger.batches import Announced, MessageBatches
from portal.messenger.hours import ChatSettings, ChatSettingsCache
from portal.messenger.presence import PresenceAnnouncements
from portal.messenger.reads import ReadReceipts
from portal.messenger.sending import QueuedMessages
from portal.security import Signer
from portal.urls import PathCache

log = logging.getLogger(__name__)

VISITOR_TOKEN_MAX_AGE = 365 * 24 * 3600
UPLOAD_MAX_AGE = 24 * 3600
FILE_LINK_MAX_AGE = 30 * 24 * 3600
WATCH_INTERVAL_S = 5.0
PRESENCE_CACHE_S = 1.0


def visitor_owner(visitor_id: str) -> str:
    """Who a visitor is to the store: their messages' client ids and their uploads carry it."""
    return f"v:{visitor_id}"


def agent_owner(agent_id: int) -> str:
    return f"a:{agent_id}"


def conversation_channel(tenant_id: int, conversation_id: int) -> str:
    return f"conv:{tenant_id}:{conversation_id}"


def inbox_channel(tenant_id: int) -> str:
    return f"inbox:{tenant_id}"


def presence_channel(tenant_id: int) -> str:
    """Where a tenant's agent sockets hear who is online."""
    return f"presence:{tenant_id}"


def _when(moment: datetime) -> str:
    # (What the core hands out is UTC already: converting it again cost a tzinfo call each.)
    return moment.isoformat() if moment.tzinfo is UTC else moment.astimezone(UTC).isoformat()


def message_json(message: ChatMessage, file_url: Callable[[int], str]) -> dict[str, Any]:
    """A message as frames carry it; `file_url` makes each attachment's link."""
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "author_type": message.author_type,
        "author_name": message.author_name,
        "body": message.body,
        "client_id": message.client_id.rpartition("/")[2],  # without its author's prefix
        "created_at": _when(message.created_at),
        "internal": message.internal,
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "size": a.size,
                "url": file_url(a.id),
            }
            for a in message.attachments
        ],
    }


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    c = conversation
    return {
        "id": c.id,
        "status": c.status,
        "created_at": _when(c.created_at),
        "updated_at": _when(c.updated_at),
        "assignee_agent_id": c.assignee_agent_id,
        "assignee_name": c.assignee_name,
        "ticket_id": c.ticket_id,
        "visitor_name": c.visitor_name,
        "visitor_email": c.visitor_email,
        "visitor_email_verified": c.visitor_email_verified,
        "has_email": bool(c.visitor_email),
        "subject": c.subject,
        "last_message_id": c.last_message_id,
        "last_message_preview": c.last_message_preview,
        "visitor_read_id": c.visitor_read_id,
        "agent_read_id": c.agent_read_id,
    }


def visitor_json(conversation: Conversation) -> dict[str, Any]:
    """What a visitor may know of their conversation: not the other side's bookkeeping."""
    data = conversation_json(conversation)
    data.pop("assignee_agent_id")
    data.pop("visitor_email")
    data.pop("visitor_email_verified")
    return data


# ------------------------------------------------------------------ signed tokens
def visitor_token(signer: Signer, tenant_id: int, visitor_id: str) -> str:
    return signer.dumps("visitor", {"t": tenant_id, "v": visitor_id})


def read_visitor_token(signer: Signer, tenant_id: int, token: Any) -> str | None:
    """The visitor id in a token made for this tenant, or None."""
    if not isinstance(token, str) or len(token) > 500:
        return None
    data = signer.loads("visitor", token, max_age=VISITOR_TOKEN_MAX_AGE)
    if not isinstance(data, dict) or data.get("t") != tenant_id:
        return None
    visitor_id = data.get("v")
    return visitor_id if isinstance(visitor_id, str) and visitor_id else None


def upload_token(signer: Signer, tenant_id: int, owner: str, draft: AttachmentDraft) -> str:
    """An id for a stored upload, good for a day, only to the one who uploaded it."""
    return signer.dumps(
        "chat-upload",
        {
            "t": tenant_id,
            "o": owner,
            "f": draft.filename,
            "c": draft.content_type,
            "s": draft.size,
            "k": draft.storage_key,
        },
    )


def read_upload_token(signer: Signer, tenant_id: int, owner: str, token: Any) -> AttachmentDraft:
    data = (
        signer.loads("chat-upload", token, max_age=UPLOAD_MAX_AGE)
        if isinstance(token, str)
        else None
    )
    if not isinstance(data, dict) or data.get("t") != tenant_id or data.get("o") != owner:
        raise Conflict("That upload is unknown or expired; attach the file again.")
    return AttachmentDraft(data["f"], data["c"], int(data["s"]), data["k"])


def read_file_link(signer: Signer, attachment_id: int, sig: str) -> bool:
    return signer.loads("chat-file", sig, max_age=FILE_LINK_MAX_AGE) == attachment_id


# ------------------------------------------------------------------ the service
class Messenger:
    """Chat actions shared by visitor sockets, agent sockets and the unanswered-chat watcher."""

    def __init__(
        self, core: HelpdeskCore, hub: Hub, mailer: Mailer, signer: Signer, paths: PathCache
    ) -> None:
        self.core = core
        self.paths = paths
        self.hub = hub
        self.mailer = mailer
        self.signer = signer
        self._told: set[tuple[int, int]] = set()  # (tenant, conversation) told "no answer"
        # Every visitor message asks the tenant's hours and answer timeout: parsed once.
        self._settings = ChatSettingsCache()
        # Visitors' messages ask whether anyone is online; a second-old answer is good enough.
        self._presence: dict[int, tuple[float, dict[int, str]]] = {}
        self.reads = ReadReceipts(core, hub, conversation_channel)
        self.presence_changes = PresenceAnnouncements(hub, presence_channel)
        self.messages = MessageBatches(core, self.announce_messages)
        # In front of a remote core: visitors' messages kept on the edge until the core has
        # them (`sending.py`); None on the embedded core, whose path stays as it is.
        self.queued: QueuedMessages | None = None

    async def close(self) -> None:
        """Store and announce what is still pending (messages, read receipts, presence)."""
        await self.messages.close()
        await self.reads.close()
        await self.presence_changes.close()

    def message_json(self, message: ChatMessage) -> dict[str, Any]:
        return message_json(message, self.file_link)

    def file_link(self, attachment_id: int) -> str:
        """A link to a chat file; whoever sees the conversation gets it, it works for 30 days."""
        path = self.paths.path_for("messenger_attachment", {"attachment_id": attachment_id})
        return f"{path}?sig={self.signer.dumps('chat-file', attachment_id)}"

    async def publish_message(self, tenant_id: int, message: ChatMessage) -> None:
        channel = conversation_channel(tenant_id, message.conversation_id)
        if self.hub.heard(channel):  # (no socket of the conversation here: nothing to build)
            frame = Frame.of({"type": "message", "message": self.message_json(message)})
            await self.hub.publish(channel, frame)

    async def publish_conversation(self, conversation: Conversation) -> None:
        """Tell the conversation's sockets and every agent's inbox that it changed."""
        data = conversation_json(conversation)
        channel = conversation_channel(conversation.tenant_id, conversation.id)
        await self.hub.publish(channel, {"type": "conversation", "conversation": data})
        await self.hub.publish(
            inbox_channel(conversation.tenant_id), {"type": "inbox", "conversations": [data]}
        )

    def chat_settings(self, tenant: Tenant) -> ChatSettings:
        """The tenant's chat settings, parsed once per change of them."""
        return self._settings.get(tenant)

    async def post(
        self, tenant: Tenant, conversation_id: int, draft: MessageDraft
    ) -> tuple[ChatMessage, Conversation]:
        """Store a message (a resend returns the stored one) with the others of the moment,
        then fan it out. Returns the message and the conversation as it is after it."""
        return await self.messages.post(tenant.id, conversation_id, draft)

    async def announce_message(
        self, tenant_id: int, message: ChatMessage, conversation: Conversation
    ) -> None:
        """Fan one stored message out (`announce_messages`)."""
        await self.announce_messages([(tenant_id, message, conversation)])

    async def announce_messages(self, stored: list[Announced]) -> None:
        """Fan stored messages out, in the order given: each to its conversation's sockets;
        then to each tenant's agents one `inbox` frame with every conversation the messages
        changed, as it is after them. The inbox is a list an agent glances at: a busy moment's
        messages make one frame (and one redraw) for each agent rather than one each."""
        changed: dict[int, dict[int, Conversation]] = {}
        for tenant_id, message, conversation in stored:
            await self.publish_message(tenant_id, message)
            if not message.internal:  # (a note changes nothing an inbox shows)
                changed.setdefault(tenant_id, {})[conversation.id] = conversation
        for tenant_id, conversations in changed.items():
            inbox = inbox_channel(tenant_id)
            if self.hub.heard(inbox):
                data = [conversation_json(c) for c in conversations.values()]
                await self.hub.publish(inbox, Frame.of({"type": "inbox", "conversations": data}))

    async def start(
        self,
        tenant: Tenant,
        *,
        visitor_id: str,
        customer_id: int | None,
        name: str,
        email: str,
        body: str,
        client_id: str,
    ) -> Conversation:
        """Open a conversation (once per client id) with its first message, if any."""
        conversation = await self.core.chat.start_conversation(
            tenant.id,
            visitor_id=visitor_id,
            customer_id=customer_id,
            name=name,
            email=email,
            subject=body.splitlines()[0][:200] if body else "",
            idempotency_key=f"{visitor_id}:{client_id}",
        )
        if body:
            first = MessageDraft(
                author_type="visitor",
                author_id=conversation.customer_id,
                author_name=name or conversation.visitor_name,
                body=body,
                client_id=f"{visitor_owner(visitor_id)}/{client_id}",
            )
            _message, conversation = await self.post(tenant, conversation.id, first)
        else:
            await self.publish_conversation(conversation)
        return conversation

    # ------------------------------------------------------------ nobody there
    async def unavailable_reason(self, tenant: Tenant) -> str | None:
        """Why nobody can answer now ("outside_hours", "no_agents"), or None."""
        if not self.chat_settings(tenant).is_open():
            return "outside_hours"
        presence = self._recent_presence(tenant.id)
        if presence is None:
            presence = await self.presence(tenant.id)
        return None if "online" in presence.values() else "no_agents"

    async def presence(self, tenant_id: int) -> dict[int, str]:
        """Agents' presence, read from the hub at most once a second per tenant."""
        presence = self._recent_presence(tenant_id)
        if presence is None:
            presence = await self.hub.presence(tenant_id)
            self._presence[tenant_id] = (time.monotonic() + PRESENCE_CACHE_S, presence)
        return presence

    def _recent_presence(self, tenant_id: int) -> dict[int, str] | None:
        """The presence read less than a second ago (every visitor message asks), or None."""
        cached = self._presence.get(tenant_id)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def unanswered(
        self, tenant: Tenant, conversation: Conversation, now: datetime | None = None
    ) -> bool:
        """Waiting for an agent longer than the tenant's answer timeout."""
        timeout = self.chat_settings(tenant).answer_timeout
        return conversation.status == "waiting" and (
            (now or datetime.now(UTC)) - conversation.created_at > timeout
        )

    async def nobody_there(self, tenant: Tenant, conversation: Conversation, reason: str) -> None:
        """Tell the visitor; with an email known, the conversation becomes a ticket now."""
        ticket_number = None
        if conversation.visitor_email:
            ticket = await self.core.chat.conversation_to_ticket(tenant.id, conversation.id)
            ticket_number = ticket.number
            conversation = await self.core.chat.get_conversation(tenant.id, conversation.id)
            await self.publish_conversation(conversation)
        await self.hub.publish(
            conversation_channel(tenant.id, conversation.id),
            {
                "type": "availability",
                "conversation_id": conversation.id,
                "state": "no_answer" if reason == "no_answer" else "offline",
                "reason": reason,
                "needs_email": not conversation.visitor_email,
                "ticket": ticket_number,
            },
        )

    async def nobody_reason(self, tenant: Tenant, conversation: Conversation | None) -> str | None:
        """Why nobody will answer this waiting chat (None: one about to start), or None.

        With an email known, a chat nobody answers becomes a ticket at once (`nobody_there`), so
        a visitor's socket asks this before a write that leaves an email, to count the ticket
        against the web forms' submission limits before anything is stored."""
        if conversation is not None and conversation.status != "waiting":
            return None
        reason = await self.unavailable_reason(tenant)
        if reason is None and conversation is not None and self.unanswered(tenant, conversation):
            reason = "no_answer"
        return reason

    async def check_availability(self, tenant: Tenant, conversation: Conversation) -> None:
        """After a visitor wrote or left an email: if nobody can answer, say so (and ticket)."""
        reason = await self.nobody_reason(tenant, conversation)
        if reason is not None:
            await self.nobody_there(tenant, conversation, reason)

    async def watch_unanswered(self, interval: float = WATCH_INTERVAL_S) -> None:
        """Forever: waiting conversations past the answer timeout are told so, and ticketed."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_unanswered()
            except Exception:  # one bad round must not stop the watcher
                log.exception("checking unanswered chats failed")

    async def sweep_unanswered(self, now: datetime | None = None) -> None:
        """One round of the watcher; `now` lets tests look into the future."""
        now = now or datetime.now(UTC)
        for tenant in await self.core.tenants.list_tenants():
            # Only chats old enough to be unanswered: reading every waiting one (SQLite runs
            # on the event loop) held every socket of the process for ~10 ms per 500.
            timeout = self.chat_settings(tenant).answer_timeout
            for conversation in await self.core.chat.list_conversations(
                tenant.id, status="waiting", created_before=now - timeout, limit=500
            ):
                key = (tenant.id, conversation.id)
                if key in self._told or not self.unanswered(tenant, conversation, now):
                    continue
                self._told.add(key)
                await self.nobody_there(tenant, conversation, "no_answer")
            await asyncio.sleep(0)  # one tenant at a time: let the sockets have their turns

    # ------------------------------------------------------------ transcript
    async def transcript_addresses(self, tenant_id: int, conversation: Conversation) -> list[str]:
        """Where a transcript may go: the chat's own email and its customer's, never elsewhere.

        Anything else would make the transcript, sent in the tenant's name with the visitor's
        text, an open mail relay."""
        addresses = [conversation.visitor_email] if conversation.visitor_email else []
        if conversation.customer_id is not None:
            customer = await self.core.customers.get_customer(tenant_id, conversation.customer_id)
            if customer.email and customer.email.lower() not in map(str.lower, addresses):
                addresses.append(customer.email)
        return addresses

    async def send_transcript(self, tenant: Tenant, conversation: Conversation, to: str) -> bool:
        """Mail the transcript to `to`, one of `transcript_addresses` (callers say so first)."""
        allowed = await self.transcript_addresses(tenant.id, conversation)
        if to.lower() not in map(str.lower, allowed):
            raise Conflict("The transcript goes only to the email address this chat has.")
        messages = await self.core.chat.chat_messages(tenant.id, conversation.id)
        lines = [
            f"[{m.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC] {m.author_name}: {m.body}"
            + "".join(f" [{a.filename}]" for a in m.attachments)
            for m in messages
        ]
        subject = f"{tenant.name}: {conversation.subject or 'Chat'}"[:200]
        return await self.mailer.send(to, subject, "\n".join(lines) + "\n", sender_name=tenant.name)


async def visible_conversation(
    core: HelpdeskCore,
    tenant_id: int,
    conversation_id: int,
    *,
    visitor_id: str,
    customer_id: int | None,
) -> Conversation:
    """The conversation if this visitor (or signed-in customer) owns it; NotFound otherwise."""
    conversation = await core.chat.get_conversation(tenant_id, conversation_id)
    if conversation.visitor_id == visitor_id:
        return conversation
    if customer_id is not None and conversation.customer_id == customer_id:
        return conversation
    raise NotFound("no such conversation")
