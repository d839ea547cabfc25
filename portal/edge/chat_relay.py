"""Chat messages stored at a remote core by someone else (an agent working at the core) reach
the edge's chat sockets.

The core announces each stored message (`chat.message`: conversation and message id). When a
socket of this process follows that conversation, the message is read from the core and
published like the edge's own messages; sockets skip an id they already sent, so the edge's
own messages coming back this way reach nobody twice.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from portal.core.contract import Event
from portal.core.contract.events import CHAT_MESSAGE
from portal.messenger.service import Messenger, conversation_channel

log = logging.getLogger(__name__)


async def relay_chat_messages(events: AsyncIterator[Event], messenger: Messenger) -> None:
    """Publish each announced message to its conversation's sockets here, until cancelled."""
    async for event in events:
        if event.type != CHAT_MESSAGE:
            continue
        conversation_id = event.data.get("conversation_id")
        message_id = event.data.get("message_id")
        if not isinstance(conversation_id, int) or not isinstance(message_id, int):
            continue
        if not messenger.hub.heard(conversation_channel(event.tenant_id, conversation_id)):
            continue  # nobody here follows it; a socket that comes later catches up
        try:
            messages = await messenger.core.chat.chat_messages(
                event.tenant_id,
                conversation_id,
                after_id=message_id - 1,
                limit=1,
                include_internal=True,
            )
        except Exception:  # the core away: the sockets catch up when they reconnect
            log.exception("reading chat message %s from the core failed", message_id)
            continue
        for message in messages:
            if message.id == message_id:
                await messenger.publish_message(event.tenant_id, message)
