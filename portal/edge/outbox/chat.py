"""Visitors' chat messages through the outbox (an edge on a remote core).

A message is one outbox row (`post_chat_message`) in its conversation's stream, so the core
gets a conversation's messages one at a time, in the order written. The row's idempotency key
is the one `CoreClient` derives for a chat message (conversation + client id): a resend never
doubles, whichever way it went. The visitor is acknowledged once the row is committed
(`Outbox.enqueue`); when the core accepts the row, its answer (the stored message, the core's
id) is fanned out like any stored message; a refusal sets the row aside for `/admin/outbox`
and tells the conversation's sockets the message was not sent.

Starting a conversation still needs the core (it assigns the id everything else follows): the
visitor socket answers a start while the core is down with "chat is unavailable right now".
"""

from __future__ import annotations

import logging
from typing import Any

from portal.core.contract import ChatMessage, Conversation, MessageDraft
from portal.core.remote.client import CoreClient
from portal.edge.outbox.outbox import Outbox, decode_args, decode_result, encode_args
from portal.edge.outbox.rows import SENT, NewRow, Row
from portal.hub import Frame
from portal.messenger.sending import NOT_SENT, SendingMessage
from portal.messenger.service import Messenger, conversation_channel

log = logging.getLogger(__name__)

KIND, DOMAIN, METHOD = "chat", "chat", "post_chat_message"


def chat_stream(tenant_id: int, conversation_id: int) -> str:
    return f"chat:{tenant_id}:{conversation_id}"


def _sending(row: Row) -> SendingMessage:
    args = decode_args(DOMAIN, METHOD, row.args)
    return SendingMessage(
        conversation_id=args["conversation_id"],
        draft=args["draft"],
        created_at=row.created_at,
        reference=row.reference,
        state="sending" if row.state == "pending" else NOT_SENT,
    )


class ChatOutbox:
    """`QueuedMessages` over the edge's outbox; `attach(messenger)` wires both ways."""

    def __init__(self, outbox: Outbox, client: CoreClient) -> None:
        self.outbox = outbox
        self.client = client
        self._messenger: Messenger | None = None

    def attach(self, messenger: Messenger) -> None:
        """Visitors' messages go through here; rows the core took or refused are announced."""
        self._messenger = messenger
        messenger.queued = self
        self.outbox.on_accepted(self._accepted)
        self.outbox.on_set_aside(self._set_aside)

    async def post(
        self, tenant_id: int, conversation_id: int, draft: MessageDraft
    ) -> tuple[ChatMessage, Conversation] | SendingMessage:
        args: dict[str, Any] = {
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "draft": draft,
        }
        key = self.client.idempotency_key(self.client.operation(DOMAIN, METHOD, args), args)
        earlier = await self.outbox.store.find(tenant_id, METHOD, key)
        if earlier is not None:  # a resend (a reconnect, another try): one row
            if earlier.state == SENT:
                stored: tuple[ChatMessage, Conversation] = decode_result(
                    DOMAIN, METHOD, earlier.result
                )
                return stored
            return _sending(earlier)
        row = await self.outbox.enqueue(
            NewRow(
                tenant_id=tenant_id,
                kind=KIND,
                domain=DOMAIN,
                method=METHOD,
                stream=chat_stream(tenant_id, conversation_id),
                args=encode_args(DOMAIN, METHOD, args),
                idempotency_key=key,
            )
        )
        return _sending(row)

    async def sending(self, tenant_id: int, conversation_id: int) -> list[SendingMessage]:
        rows = await self.outbox.store.unsent(
            tenant_id, kind=KIND, stream=chat_stream(tenant_id, conversation_id)
        )
        return [_sending(row) for row in rows]

    async def _accepted(self, row: Row, value: Any) -> None:
        if row.kind != KIND or self._messenger is None:
            return
        message, conversation = value
        await self._messenger.announce_message(row.tenant_id, message, conversation)

    async def _set_aside(self, rows: list[Row]) -> None:
        if self._messenger is None:
            return
        for row in rows:
            if row.kind != KIND:
                continue
            not_sent = _sending(row)
            channel = conversation_channel(row.tenant_id, not_sent.conversation_id)
            await self._messenger.hub.publish(channel, Frame.of(not_sent.frame()))
