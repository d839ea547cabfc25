"""The core's events as the edge takes them in: signed webhooks, with the feed behind them.

`CoreEvents` is one object per edge app: `receive()` checks a webhook (the receiver route calls
it), `run()` catches up from the feed at start and after any gap, and `events()` yields every
event taken in, once, as the `Event`s the apps consume (a remote core's `events()` delegates
here). What it remembers (webhook ids seen, the feed's cursor) is in the edge's database, shared
by every edge process, so a replay is refused and an event handed on once across them.

Webhooks are checked with the `standardwebhooks` package against PORTAL_CORE_WEBHOOK_SECRET:
a bad or missing signature, or a `webhook-timestamp` more than 5 minutes off (the package's
tolerance), is 401; a body that is no event envelope is 400.

A `webhook-id` seen before gets 200 with `{"status": "duplicate"}` and has no effect, not 409:
Standard Webhooks says to use the id to process a message once, and that a sender treats every
non-2xx as a failure to retry. Our sender retries an event until it is accepted, so a 409 would
have it retry forever an event this edge already took in (from the feed, or before an answer
was lost), holding back every later event to this edge. A replay by someone else (a copy of a
signed request within its 5 minutes) is refused all the same: it does nothing.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Literal

from standardwebhooks import Webhook, WebhookVerificationError

from portal.core.contract import EVENTS_RESUMED, Event
from portal.core.envelope import Envelope, cursor_number, event_of, parse_envelope
from portal.edge.catchup import CatchUp, FeedError, FeedReader
from portal.edge.db import EdgeDatabase
from portal.metrics import Metrics
from portal.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 60.0  # the feed is read this often anyway, should deliveries stop altogether
# How `portal_webhook_failures_total` names each refusal (a replayed id is counted as "replayed").
REFUSAL_REASONS = {401: "signature", 400: "malformed", 404: "unconfigured", 503: "starting"}
GAP_WAIT_S = 5.0  # a webhook after a gap waits this long for the catch-up (the sender waits 15)
RETRY_FIRST_S, RETRY_CAP_S = 1.0, 60.0  # backoff of catch-ups that failed

Outcome = Literal["accepted", "duplicate"]


class Refused(Exception):
    """A webhook refused: the HTTP status to answer and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class CoreEvents:
    """Core events into the edge: webhook receiver, feed catch-up, one stream of `Event`s."""

    def __init__(
        self,
        db: EdgeDatabase,
        *,
        webhook_secret: str = "",
        feed: FeedReader | None = None,
        poll_s: float = POLL_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.feed = feed
        self.poll_s = poll_s
        self._verifier = Webhook(webhook_secret) if webhook_secret else None
        self._listeners: set[asyncio.Queue[Event]] = set()
        self._listened = asyncio.Event()  # set once someone listens: before, nothing is taken in
        self._catch_up = (
            CatchUp(feed, db, hand_on=self._hand_on, resumed=self._resumed) if feed else None
        )
        self._wake = asyncio.Event()
        self.caught_up = asyncio.Event()  # set after each catch-up that reached the feed's end

    @property
    def receives_webhooks(self) -> bool:
        return self._verifier is not None

    async def start(self) -> None:
        await self.db.start()

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        await self.db.close()

    async def events(self) -> AsyncIterator[Event]:
        """Every core event this edge takes in, once, in the order taken in.

        Nothing is taken in before the first listener: an event handed on to nobody would be
        marked seen and lost, so until then webhooks get 503 (the sender retries) and the feed
        is not read.
        """
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners.add(queue)
        self._listened.set()
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.discard(queue)

    async def relay_to(self, publish: Callable[[Event], None]) -> None:
        """Listen, and pass every event on to `publish` (a remote core's bus), until cancelled."""
        async for event in self.events():
            publish(event)

    async def run(self) -> None:
        """Catch up from the feed at start, when woken by a gap, and every `poll_s`, until
        cancelled; a failed catch-up is tried again with backoff."""
        if self._catch_up is None:
            return
        await self._listened.wait()
        failures = 0
        while True:
            self._wake.clear()
            try:
                await self._catch_up.run_once()
            except Exception as exc:  # the feed or the edge's database: try again later
                failures += 1
                delay = min(RETRY_CAP_S, RETRY_FIRST_S * 2 ** min(failures - 1, 10))
                log.warning(
                    "catching up from the core's feed failed (%s); again in %.0f s", exc, delay
                )
            else:
                failures, delay = 0, self.poll_s
                self.caught_up.set()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """Take in one webhook delivery; Refused (401, 400, 404) when it is not one to take."""
        try:
            outcome = await self._receive(body, headers)
        except Refused as refused:
            self._failed(REFUSAL_REASONS.get(refused.status, str(refused.status)))
            raise
        if outcome == "duplicate":
            self._failed("replayed")
        return outcome

    async def _receive(self, body: bytes, headers: Mapping[str, str]) -> Outcome:
        event = self._verified(body, headers)
        if not self._listened.is_set():
            raise Refused(503, "The edge is starting; nothing listens to core events yet.")
        if await self.db.seen(event["id"]):
            return "duplicate"
        after = await self.db.cursor()
        previous = event.get("previous")
        gap = after is not None and previous is not None and cursor_number(previous) > after
        if gap:
            # Hand on what was missed first, in order; this event comes with it if the feed
            # has it. Should the feed fail, this event still goes on, and the catch-up retries.
            caught_up = await self.catch_up()
            if not caught_up:
                self._wake.set()
        if not await self.db.claim(event["id"]):
            return "duplicate" if not gap else "accepted"
        self._hand_on(event, channel="webhook")
        if not gap:
            await self.db.advance(cursor_number(event["cursor"]))
        return "accepted"

    def _verified(self, body: bytes, headers: Mapping[str, str]) -> Envelope:
        if self._verifier is None:
            raise Refused(404, "This edge takes no core webhooks (PORTAL_CORE_WEBHOOK_SECRET).")
        wanted = ("webhook-id", "webhook-timestamp", "webhook-signature")
        given = {name: headers.get(name, "") for name in wanted}
        try:
            self._verifier.verify(body, given, json_parse=False)
        except WebhookVerificationError as exc:
            raise Refused(401, f"webhook refused: {exc}") from None
        except (ValueError, binascii.Error):  # a malformed signature header or body encoding
            raise Refused(401, "webhook refused: malformed webhook-signature") from None
        try:
            event = parse_envelope(json.loads(body))
        except ValueError as exc:
            raise Refused(400, f"not a core event: {exc}") from None
        if event["id"] != given["webhook-id"]:
            raise Refused(400, "not a core event: its id is not the webhook-id")
        return event

    async def catch_up(self) -> bool:
        """Read the feed now (waiting at most GAP_WAIT_S); whether it got to the end."""
        if self._catch_up is None:
            return False
        try:
            await asyncio.wait_for(self._catch_up.run_once(), GAP_WAIT_S)
        except (FeedError, TimeoutError) as exc:
            log.warning("catching up after a webhook gap failed: %r", exc)
            return False
        return True

    def _hand_on(self, event: Envelope, channel: str = "feed") -> None:
        if self.metrics is not None:
            self.metrics.events_received.labels(channel).inc()
        self._publish(event_of(event))

    def _failed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_failures.labels(reason).inc()

    def _resumed(self) -> None:
        self._publish(Event(EVENTS_RESUMED, 0))

    def _publish(self, event: Event) -> None:
        for queue in self._listeners:
            queue.put_nowait(event)


def edge_core_events(settings: Settings, metrics: Metrics | None = None) -> CoreEvents | None:
    """The app's CoreEvents: webhooks when PORTAL_CORE_WEBHOOK_SECRET is set, the feed when
    PORTAL_CORE_URL and PORTAL_CORE_KEY are; None (no edge database either) when neither."""
    feed = FeedReader(settings.core_url, settings.core_key) if settings.core_url else None
    if feed is None and not settings.core_webhook_secret:
        return None
    return CoreEvents(
        EdgeDatabase(settings.resolved_edge_database_url),
        webhook_secret=settings.core_webhook_secret,
        feed=feed,
        metrics=metrics,
    )
