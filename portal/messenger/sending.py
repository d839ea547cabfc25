"""Visitors' messages kept on the edge until a remote core has them (the edge's outbox).

On the embedded core a message is stored before it is acknowledged and fanned out. In front of
a remote core it is acknowledged once it is durable on the edge: the socket gets an `ack` with
`pending: true` and no id, and every socket of the conversation a `sending` frame carrying the
message without an id (matched by `client_id`). When the core has it, the stored `message`
(the core's id) follows and replaces the sending copy; a reconnecting client gets the stored
messages after its last id, then the ones still sending, then `caught_up`.

`QueuedMessages` is what the messenger needs of that outbox (`portal.edge.outbox.chat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from portal.core.contract import ChatMessage, Conversation, MessageDraft

SENDING, NOT_SENT = "sending", "not_sent"


@dataclass(frozen=True)
class SendingMessage:
    """A visitor's message durable on the edge, not (yet) at the core."""

    conversation_id: int
    draft: MessageDraft
    created_at: datetime
    reference: str  # the edge's own, for a visitor who asks or an admin who looks
    state: str = SENDING  # NOT_SENT: the core refused it; an admin decides (/admin/outbox)

    @property
    def client_id(self) -> str:
        """As the client sent it: without its author's prefix."""
        return self.draft.client_id.rpartition("/")[2]

    def frame(self) -> dict[str, Any]:
        d = self.draft
        return {
            "type": "sending",
            "message": {
                "conversation_id": self.conversation_id,
                "client_id": self.client_id,
                "author_type": d.author_type,
                "author_name": d.author_name,
                "body": d.body,
                "created_at": self.created_at.astimezone(UTC).isoformat(),
                "internal": d.internal,
                "attachments": [{"filename": a.filename, "size": a.size} for a in d.attachments],
                "reference": self.reference,
                "state": self.state,
            },
        }


class QueuedMessages(Protocol):
    async def post(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> tuple[ChatMessage, Conversation] | SendingMessage:
        """Keep the message durably (once per client id); the stored message and its
        conversation when the core has it already (a resend), else the message as sending."""
        ...

    async def sending(self, tenant_id: int, conversation_id: int) -> list[SendingMessage]:
        """The conversation's messages not at the core yet, oldest first."""
        ...
