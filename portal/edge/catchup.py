"""Catch-up from the core's events feed: the source of truth behind the webhooks.

The edge reads `GET /core/v1/events?after=<stored cursor>` with its core key until the feed has
nothing more, hands on each event it has not taken in yet (by id, shared with the webhook path,
so each event is handed on once), and stores the feed's `next` cursor. It does so at start, when
a webhook shows a gap (its `previous` is past the stored cursor), and every `POLL_S` in case
deliveries stopped altogether.

An edge without a stored cursor (its first start, or a new edge database) starts where the feed
is now: it has nothing derived from older events to correct. A feed that answers 410 (the
cursor is older than what the core keeps) makes the edge say `events.resumed` (subscribers drop
caches and look at the core again) and continue from the cursor the core names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from portal.core.envelope import (
    CursorGone,
    Envelope,
    Page,
    cursor_number,
    cursor_text,
    parse_envelope,
)
from portal.edge.db import EdgeDatabase

log = logging.getLogger(__name__)

PAGE = 500
TIMEOUT_S = 10.0


class FeedError(Exception):
    """The feed could not be read (core down, refused key, an answer that is no feed page)."""


class FeedReader:
    """`GET /core/v1/events` of one core, with the edge's core key."""

    def __init__(
        self, core_url: str, core_key: str, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self._client = client or httpx.AsyncClient(
            base_url=core_url.rstrip("/"),
            headers={"authorization": f"Bearer {core_key}"},
            timeout=TIMEOUT_S,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def page(self, after: int | None, limit: int = PAGE) -> Page:
        """The events after cursor `after` (None: where the feed is now, with no events)."""
        params = {"limit": str(limit)} if after is not None else {"limit": "0"}
        if after is not None:
            params["after"] = cursor_text(after)
        try:
            response = await self._client.get("/core/v1/events", params=params)
        except httpx.HTTPError as exc:
            raise FeedError(f"the core's events feed did not answer: {exc!r}") from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code == 410 and isinstance(body, dict):
            resume_after = _cursor(body.get("resume_after"))
            if resume_after is not None:
                raise CursorGone(resume_after)
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("detail", "") if isinstance(body, dict) else ""
            raise FeedError(f"the core's events feed answered {response.status_code} {detail}")
        try:
            events = [parse_envelope(item) for item in body["events"]]
            return Page(events, cursor_number(str(body["next"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise FeedError(f"the core's events feed sent no feed page: {exc}") from exc


class CatchUp:
    """Reads the feed from the stored cursor until it has nothing more; one reader at a time."""

    def __init__(
        self,
        reader: FeedReader,
        db: EdgeDatabase,
        *,
        hand_on: Callable[[Envelope], None],
        resumed: Callable[[], None],
    ) -> None:
        self.reader = reader
        self.db = db
        self.hand_on = hand_on
        self.resumed = resumed
        self._lock = asyncio.Lock()

    async def run_once(self) -> int:
        """Catch up now; the number of events handed on. FeedError when the feed fails."""
        async with self._lock:
            handed = 0
            while True:
                after = await self.db.cursor()
                if after is None:
                    await self.db.advance((await self.reader.page(None)).next)
                    return handed
                try:
                    page = await self.reader.page(after)
                except CursorGone as gone:
                    log.warning("events feed: cursor %s is gone; resyncing", after)
                    self.resumed()
                    await self.db.reset(gone.resume_after)
                    continue
                for event in page.events:
                    if await self.db.claim(event["id"]):
                        self.hand_on(event)
                        handed += 1
                await self.db.advance(page.next)
                if len(page.events) < PAGE:
                    return handed


def _cursor(value: object) -> int | None:
    try:
        return cursor_number(value) if isinstance(value, str) else None
    except ValueError:
        return None
