"""Live updates of one ticket as server-sent events, from the core events of every process.

`GET /portal/tickets/{id}/events?after=<reply id>` answers `text/event-stream`:

    event: status   data: {"status", "label", "closed"}          (first, then on every change)
    event: reply    data: {"id", "author_type", "author_name", "body", "created_at",
    id: <reply id>         "attachments": [{"id", "filename", "size", "url"}]}
    : connected     once the stream follows the core; `: ping` every 15 seconds after that

Internal notes are never sent. The stream subscribes to the core's events before it looks up the
replies after `after` (or the browser's `Last-Event-ID`), so nothing said between the page load
and the connection is lost. A stream ends after 10 minutes; the browser's EventSource reconnects
by itself with `Last-Event-ID`, which also keeps streams from outliving a server shutdown for long.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from portal.core.contract import (
    CLOSED_STATUSES,
    EVENTS_RESUMED,
    Event,
    HelpdeskCore,
    Reply,
    Ticket,
)
from portal.customer.pages import not_found, require_customer
from portal.customer.tickets import visible_ticket
from portal.labels import status_label
from portal.services import services
from portal.urls import path_for

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 600.0
EVENT_TYPES = ("ticket.replied", "ticket.status_changed")


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def reply_data(request: Request, reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "author_type": reply.author_type,
        "author_name": reply.author_name,
        "body": reply.body,
        "created_at": reply.created_at.isoformat(),
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "size": a.size,
                "url": path_for(request, "customer_attachment", id=a.id),
            }
            for a in reply.attachments
        ],
    }


def status_data(status: str) -> dict[str, Any]:
    """The status event: its label in the request's language (the stream runs inside it)."""
    label = status_label(status)
    return {"status": status, "label": label, "closed": status in CLOSED_STATUSES}


def _after(request: Request) -> int:
    values = [request.query_params.get("after", ""), request.headers.get("last-event-id", "")]
    return max((int(v) for v in values if v.isdigit() and len(v) < 19), default=0)


async def _stream(
    request: Request,
    core: HelpdeskCore,
    events: AsyncIterator[Event],
    ticket: Ticket,
    after: int,
) -> AsyncIterator[str]:
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def pump() -> None:
        async for event in events:
            if event.type == EVENTS_RESUMED or (
                event.tenant_id == ticket.tenant_id
                and event.type in EVENT_TYPES
                and event.data.get("ticket_id") == ticket.id
            ):
                queue.put_nowait(event)

    follower = asyncio.create_task(pump(), name=f"ticket-events-{ticket.id}")
    sent: set[int] = set()

    async def new_replies() -> list[str]:
        out = []
        for reply in await core.tickets.list_replies(ticket.tenant_id, ticket.id):
            if reply.id > after and reply.id not in sent:
                sent.add(reply.id)
                out.append(sse("reply", reply_data(request, reply), reply.id))
        return out

    try:
        await asyncio.sleep(0)  # let the follower subscribe before looking back
        current = await core.tickets.get_ticket(ticket.tenant_id, ticket.id)
        yield "retry: 3000\n\n"
        yield sse("status", status_data(current.status))
        for chunk in await new_replies():
            yield chunk
        yield ": connected\n\n"
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while not follower.done():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), timeout=min(HEARTBEAT_SECONDS, left))
            except TimeoutError:
                yield ": ping\n\n"
                continue
            if event.type == "ticket.status_changed":
                yield sse("status", status_data(str(event.data.get("status"))))
            elif event.type == EVENTS_RESUMED:  # something may have gone unheard: look
                current = await core.tickets.get_ticket(ticket.tenant_id, ticket.id)
                yield sse("status", status_data(current.status))
                for chunk in await new_replies():
                    yield chunk
            elif not event.data.get("internal"):
                for chunk in await new_replies():
                    yield chunk
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


@require_customer
async def ticket_events(request: Request) -> Response:
    ticket = await visible_ticket(request, request.path_params["id"])
    if ticket is None:
        return not_found(request)
    return StreamingResponse(
        _stream(
            request,
            services(request).core,
            services(request).events.events(EVENT_TYPES),
            ticket,
            _after(request),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
