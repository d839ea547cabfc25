"""Events the core API adds to the embedded core's own: what only an edge elsewhere needs.

In one process the embedded core announces no chat message (the messenger that stored it fans
it out) and no changed form (the admin page that changed it drops its cache). An edge on a
remote core stored neither itself, so the core API publishes `chat.message` and
`form.changed` after such writes; they reach edges like the core's other events (the journal:
the events feed and webhooks). The embedded core's write path stays as it was.
"""

from __future__ import annotations

from typing import Any

from portal.core.api.operations import Operation
from portal.core.contract import ChatMessage, Event, HelpdeskCore
from portal.core.contract.events import CHAT_MESSAGE, FORM_CHANGED

_CHAT_WRITES = frozenset({"add_chat_message", "post_chat_message"})
_FORM_WRITES = frozenset({"save_form", "delete_form", "create_department"})


def announce(
    core: HelpdeskCore, op: Operation, tenant_id: int, args: dict[str, Any], result: Any
) -> None:
    """Publish on `core` the event, if any, that a successful call of `op` makes."""
    publish = getattr(core, "publish", None)
    if publish is None:
        return
    if op.domain == "chat" and op.method in _CHAT_WRITES:
        message = result[0] if isinstance(result, tuple) else result
        if isinstance(message, ChatMessage):
            data = {"conversation_id": message.conversation_id, "message_id": message.id}
            publish(Event(CHAT_MESSAGE, tenant_id, data))
    elif op.domain == "forms" and op.method in _FORM_WRITES:
        form_id = args.get("form_id") or getattr(result, "id", None)
        publish(Event(FORM_CHANGED, tenant_id, {"form_id": form_id}))
