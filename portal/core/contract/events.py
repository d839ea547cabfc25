"""What a core tells the front has happened (agent replied, status changed, article published)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Not from a core: the front says so when events of other processes may have gone unheard
# (after a hub outage), so that caches are dropped and indexes catch up.
EVENTS_RESUMED = "events.resumed"

# Published by the core's HTTP API only, for edges elsewhere: in one process the messenger that
# stored a chat message fans it out itself, and the admin page that changed a form drops its cache.
CHAT_MESSAGE = "chat.message"
FORM_CHANGED = "form.changed"


@dataclass(frozen=True)
class Event:
    """Something that happened in the core that the front must react to."""

    # article.changed, category.changed, tenant.changed, customer.changed, ticket.created,
    # ticket.replied, ticket.status_changed, ticket.assigned, ticket.rated, chat.ticketed,
    # session.ended, sessions.ended, ...
    type: str
    tenant_id: int
    data: dict[str, Any] = field(default_factory=dict)
