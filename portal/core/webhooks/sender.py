"""Pushes the journal's events to every webhook endpoint, in order, signed per Standard Webhooks.

One task per endpoint, so a slow or dead endpoint holds back only itself. Each task reads the
tenant's events after the endpoint's `delivered_through` cursor and POSTs them one at a time:
`webhook-id` is the event's id (the receiver deduplicates by it), `webhook-timestamp` the
attempt's time, `webhook-signature` the `v1` HMAC by the `standardwebhooks` package. A 2xx
moves the cursor on (stored, so a restart resumes there); anything else (network error, timeout,
3xx, 4xx, 5xx) is retried with exponential backoff and jitter, honouring `Retry-After`, until it
is accepted: an endpoint that was down gets its backlog in order when it is back. A 410 means the
receiver wants no more (the spec's advice): the endpoint is disabled.

Failures are counted by reason in `failures` (and passed to `on_failure`, where the operator's
metrics hook in): `timeout`, `network`, `status`.

With several `portal core` processes on one database, each would deliver every event (the
receiver's deduplication makes that harmless, but it doubles requests): run the sender in one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from portal.core.envelope import Envelope, cursor_number
from portal.core.journal import CursorGone, Journal
from portal.core.webhooks.endpoints import Endpoint, Endpoints

log = logging.getLogger(__name__)

PAGE = 100  # events read at a time per endpoint
POLL_S = 5.0  # looks at the journal and the endpoints this often even when nothing woke it
TIMEOUT_S = 15.0  # the spec recommends 15-30 s for a receiver to answer


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of
    min(cap, first * 2**(n-1)) seconds."""

    first: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.first * 2 ** min(attempt - 1, 30))
        return random.uniform(ceiling / 2, ceiling)


class _Gone(Exception):
    """The endpoint answered 410: it wants no more deliveries."""


class WebhookSender:
    """Delivers the journal to every enabled endpoint until cancelled (`run()`)."""

    def __init__(
        self,
        journal: Journal,
        endpoints: Endpoints,
        *,
        backoff: Backoff | None = None,
        timeout_s: float = TIMEOUT_S,
        poll_s: float = POLL_S,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.journal = journal
        self.endpoints = endpoints
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        self.on_failure = on_failure
        self.failures: Counter[str] = Counter()
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))

    async def run(self) -> None:
        """Keep one delivery task per enabled endpoint, as endpoints come and go."""
        tasks: dict[int, asyncio.Task[None]] = {}
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            try:
                while True:
                    changed = self.endpoints.changed
                    try:
                        listed = await self.endpoints.list()
                    except Exception:  # the database is away: keep what runs, look again
                        log.exception("listing webhook endpoints failed")
                        await asyncio.sleep(self.poll_s)
                        continue
                    wanted = {e.id: e for e in listed if e.disabled_at is None}
                    for endpoint_id in list(tasks):
                        task = tasks[endpoint_id]
                        if endpoint_id not in wanted or task.done():
                            task.cancel()
                            del tasks[endpoint_id]
                            if task.done() and not task.cancelled() and task.exception():
                                log.error(
                                    "webhook %d: delivery stopped; restarting",
                                    endpoint_id,
                                    exc_info=task.exception(),
                                )
                    for endpoint_id, endpoint in wanted.items():
                        if endpoint_id not in tasks:
                            tasks[endpoint_id] = asyncio.create_task(
                                self._deliver_forever(client, endpoint),
                                name=f"webhook-{endpoint_id}",
                            )
                    try:
                        await asyncio.wait_for(changed.wait(), self.poll_s)
                    except TimeoutError:
                        pass
            finally:
                for task in tasks.values():
                    task.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _deliver_forever(self, client: httpx.AsyncClient, endpoint: Endpoint) -> None:
        signer = Webhook(endpoint.secret)
        after = endpoint.delivered_through
        while True:
            appended = self.journal.appended()  # taken before reading: no append is missed
            try:
                page = await self.journal.read(endpoint.tenant_id, after, PAGE)
            except CursorGone as gone:
                # Purged while the endpoint was down (or the journal is another database's):
                # go on from what is kept; the receiver sees the gap through `previous`.
                horizon = await self.journal.horizon()
                after = horizon if after < horizon else gone.resume_after
                await self.endpoints.rewind(endpoint.id, after)
                continue
            for event in page.events:
                try:
                    await self._deliver(client, endpoint, signer, event)
                except _Gone:
                    log.warning("webhook %d (%s) answered 410: disabled", endpoint.id, endpoint.url)
                    return
                after = cursor_number(event["cursor"])
                await self.endpoints.delivered(endpoint.id, after)
            if not page.events:
                try:
                    await asyncio.wait_for(appended.wait(), self.poll_s)
                except TimeoutError:
                    pass

    async def _deliver(
        self, client: httpx.AsyncClient, endpoint: Endpoint, signer: Webhook, event: Envelope
    ) -> None:
        """POST one event until the endpoint accepts it (2xx)."""
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        attempt = 0
        while True:
            attempt += 1
            now = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": event["id"],
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(event["id"], now, body),
            }
            retry_after: float | None = None
            try:
                response = await client.post(endpoint.url, content=body.encode(), headers=headers)
            except httpx.TimeoutException as exc:
                reason, error = "timeout", f"timed out ({type(exc).__name__})"
            except httpx.HTTPError as exc:
                reason, error = "network", f"{type(exc).__name__}: {exc}"[:500]
            else:
                if 200 <= response.status_code < 300:
                    return
                if response.status_code == 410:
                    self._count("status")
                    await self.endpoints.failed(endpoint.id, "HTTP 410 Gone", gone=True)
                    raise _Gone
                reason, error = "status", f"HTTP {response.status_code}"
                retry_after = _seconds(response.headers.get("retry-after", ""))
            self._count(reason)
            await self.endpoints.failed(endpoint.id, error)
            delay = self.backoff.delay(attempt)
            if retry_after is not None:
                delay = min(max(delay, retry_after), self.backoff.cap)
            log.info("webhook %d: %s; again in %.1f s", endpoint.id, error, delay)
            await asyncio.sleep(delay)

    def _count(self, reason: str) -> None:
        self.failures[reason] += 1
        if self.on_failure is not None:
            self.on_failure(reason)


def _seconds(value: str) -> float | None:
    """A `Retry-After` in seconds (the HTTP-date form is ignored: backoff applies)."""
    return float(value) if value.strip().isdigit() else None
