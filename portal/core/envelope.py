"""The envelope of a core event outside the core: the same on the events feed and on webhooks.

    {"id": "evt_...", "type": "ticket.replied", "time": "2026-12-20T10:00:00.123456Z",
     "tenant_id": 7, "data": {"ticket_id": 3, "reply_id": 9}, "cursor": "1234",
     "previous": "1201"}

`id` is stable (a webhook's `webhook-id`, the receiver's key to deduplicate), `cursor` is the
event's place in the core's journal (`GET /core/v1/events?after=CURSOR` continues after it), and
`previous` is the cursor of the tenant's event before this one (null for its first): a receiver
whose stored cursor is older than `previous` has missed something and reads the feed.

Cursors are decimal numbers that only grow. Other clients should treat them as opaque; the edge
compares them through `cursor_number` to tell a gap from the next event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from portal.core.contract import Event

# The longest cursor we accept: far beyond any journal, short enough to refuse junk early.
_MAX_CURSOR_DIGITS = 18


class Envelope(TypedDict):
    id: str
    type: str
    time: str  # RFC 3339, UTC
    tenant_id: int
    data: dict[str, Any]
    cursor: str
    previous: NotRequired[str | None]


def cursor_text(number: int) -> str:
    return str(number)


def cursor_number(text: str) -> int:
    """The journal position a cursor names; ValueError for anything that is not a cursor."""
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_CURSOR_DIGITS:
        raise ValueError(f"not a cursor: {text[:40]!r}")
    return int(text)


def rfc3339(moment: datetime) -> str:
    """`moment` in UTC as RFC 3339 with a `Z`, e.g. `2026-12-20T10:00:00.123456Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope(
    *,
    event_id: str,
    cursor: int,
    previous: int | None,
    tenant_id: int,
    type: str,
    data: dict[str, Any],
    created_at: datetime,
) -> Envelope:
    return Envelope(
        id=event_id,
        type=type,
        time=rfc3339(created_at),
        tenant_id=tenant_id,
        data=data,
        cursor=cursor_text(cursor),
        previous=None if previous is None else cursor_text(previous),
    )


def parse_envelope(value: Any) -> Envelope:
    """`value` (decoded JSON) checked to be an envelope; ValueError saying what is wrong."""
    if not isinstance(value, dict):
        raise ValueError("an event must be a JSON object")
    for name, kind in (("id", str), ("type", str), ("time", str), ("cursor", str)):
        if not isinstance(value.get(name), kind) or not value[name]:
            raise ValueError(f"`{name}` must be a non-empty string")
    tenant_id = value.get("tenant_id")
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool) or tenant_id < 1:
        raise ValueError("`tenant_id` must be a positive integer")
    if not isinstance(value.get("data"), dict):
        raise ValueError("`data` must be an object")
    cursor_number(value["cursor"])
    previous = value.get("previous")
    if previous is not None:
        if not isinstance(previous, str):
            raise ValueError("`previous` must be a cursor or null")
        cursor_number(previous)
    return Envelope(
        id=value["id"],
        type=value["type"],
        time=value["time"],
        tenant_id=tenant_id,
        data=value["data"],
        cursor=value["cursor"],
        previous=previous,
    )


def event_of(envelope: Envelope) -> Event:
    """The in-process event an envelope carries, as the apps consume core events."""
    return Event(envelope["type"], envelope["tenant_id"], dict(envelope["data"]))


class CursorGone(Exception):
    """The reader's cursor is older than what the core keeps (or was never handed out): the
    feed answers 410, and the reader resyncs and continues from `resume_after`."""

    def __init__(self, resume_after: int) -> None:
        super().__init__(f"cursor gone; resume after {resume_after}")
        self.resume_after = resume_after


@dataclass(frozen=True)
class Page:
    """A page of the feed: events after a cursor, and the cursor to continue from."""

    events: list[Envelope]
    next: int
