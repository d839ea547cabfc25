"""The edge's durable outbox: every write to a remote core is stored, then sent, until accepted.

`Outbox.submit` stores a write (the row is durable before anything is sent) and, when it heads
its stream and the core has not been failing just now, tries it at once within
PORTAL_OUTBOX_SEND_WAIT_S: the core's answer is returned as it is (its refusal raised as the
contract's error, so the customer can correct the input), and anything else (down, slow, busy)
leaves the row pending: `Queued` tells the caller to answer "received, we will confirm shortly"
with the row's reference.

`Outbox.run` is each edge process's drainer: it leases the due heads of streams, sends them
concurrently (one per stream at a time, so each stream keeps its order), and backs off per row
with full jitter, up to PORTAL_OUTBOX_RETRY_MAX_S, honouring the core's `Retry-After`. A reply
to a ticket still in the outbox shares that ticket's stream and is sent to the ticket's real id
once the core made it. A row the core refuses for good is set aside with the reason (a refused
ticket takes the replies waiting for it along) for `/admin/outbox`; other streams go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import typing
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from portal.core.api.wire import adapter
from portal.core.contract import DOMAINS, Ticket
from portal.core.remote.client import CoreClient
from portal.edge.outbox.rows import SENT, NewRow, Row, now
from portal.edge.outbox.sender import Accepted, Refused, TryLater, contract_error, send_once
from portal.edge.outbox.store import OutboxStore

log = logging.getLogger(__name__)

POLL_S = 1.0  # rows of other processes (and due retries) are looked for this often at least
LEASE_MARGIN_S = 10.0  # a lease outlives its attempt's timeout by this much
RETRY_FIRST_S = 0.5
DOWN_FOR_S = 5.0  # after a failure, new writes skip the immediate attempt this long
PURGE_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class Queued:
    """The write is stored and will be sent; `reference` is what the customer can quote."""

    row: Row

    @property
    def reference(self) -> str:
        return self.row.reference


@cache
def _hints(domain: str, method: str) -> tuple[inspect.Signature, dict[str, Any]]:
    function = getattr(DOMAINS[domain], method)
    return inspect.signature(function), typing.get_type_hints(function)


def encode_args(domain: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
    """A contract call's arguments as JSON values (the wire format's adapters)."""
    _, hints = _hints(domain, method)
    return {
        name: adapter(hints[name]).dump_python(value, mode="json") for name, value in args.items()
    }


def decode_args(domain: str, method: str, data: dict[str, Any]) -> dict[str, Any]:
    _, hints = _hints(domain, method)
    return {name: adapter(hints[name]).validate_python(value) for name, value in data.items()}


def decode_result(domain: str, method: str, data: Any) -> Any:
    _, hints = _hints(domain, method)
    return adapter(hints["return"]).validate_python(data)


class Outbox:
    """One edge process's outbox over the shared store (see the module docstring)."""

    def __init__(
        self,
        store: OutboxStore,
        client: CoreClient,
        *,
        send_wait_s: float = 1.5,
        retry_max_s: float = 60.0,
        attempt_timeout_s: float = 10.0,
        poll_s: float = POLL_S,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.send_wait_s = send_wait_s
        self.retry_max_s = retry_max_s
        self.attempt_timeout_s = attempt_timeout_s
        self.poll_s = poll_s
        self.owner = owner or uuid.uuid4().hex[:16]
        self._wake = asyncio.Event()
        self._failed_at: float | None = None  # loop time of the last failed attempt
        self._listeners: list[Callable[[int], None]] = []
        self._on_accepted: list[Callable[[Row, Any], Awaitable[None]]] = []
        self._on_set_aside: list[Callable[[list[Row]], Awaitable[None]]] = []
        self._first_tries: set[asyncio.Task[None]] = set()
        self._next_purge = now()

    # ------------------------------------------------------------------ callers' side
    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call `listener(tenant_id)` when a tenant's unsent rows change (cached pages that
        show pending items drop their copies)."""
        self._listeners.append(listener)

    def on_accepted(self, listener: Callable[[Row, Any], Awaitable[None]]) -> None:
        """Await `listener(row, value)` once the core accepted a row (the value decoded)."""
        self._on_accepted.append(listener)

    def on_set_aside(self, listener: Callable[[list[Row]], Awaitable[None]]) -> None:
        """Await `listener(rows)` when the core refused a row for good (with the rows set aside
        along with it)."""
        self._on_set_aside.append(listener)

    def changed(self, tenant_id: int) -> None:
        """Tell the listeners a tenant's unsent rows changed (an admin retried one)."""
        self._wake.set()
        for listener in self._listeners:
            listener(tenant_id)

    async def submit(self, new: NewRow) -> Accepted | Queued:
        """Store `new`, and try it at once when it may go now (see the module docstring)."""
        earlier = await self.store.find(new.tenant_id, new.method, new.idempotency_key)
        if earlier is not None:  # the same write again (a form sent twice): one row
            if earlier.state == SENT:
                return Accepted(decode_result(earlier.domain, earlier.method, earlier.result))
            return Queued(earlier)
        row, head = await self.store.add(
            new, owner=self.owner, lease_s=self.send_wait_s + LEASE_MARGIN_S
        )
        if not head or self._core_failing():
            if head:
                await self.store.later(row, "waiting: the core did not answer just now", 0)
                self._wake.set()
            self.changed(row.tenant_id)
            return Queued(row)
        try:
            async with asyncio.timeout(self.send_wait_s):
                accepted = await self._send(row)
        except Refused as refused:
            # The customer sees the core's answer now and may correct the input.
            await self.store.forget(row.id)
            raise contract_error(refused) from None
        except (TryLater, TimeoutError) as error:
            self._failed_at = asyncio.get_running_loop().time()
            reason = getattr(error, "reason", "") or "the core did not answer in time"
            await self.store.later(row, reason, 0)  # the drainer takes it from here
            self._wake.set()
            self.changed(row.tenant_id)
            return Queued(row)
        await self._accepted(row, accepted)
        return accepted

    async def enqueue(self, new: NewRow) -> Row:
        """Store `new` and return once it is durable; it is sent right after (in the background,
        when it heads its stream), never before the caller hears it is stored. For writes whose
        promise is "kept", not "answered" (a visitor's chat message)."""
        row, head = await self.store.add(
            new, owner=self.owner, lease_s=self.attempt_timeout_s + LEASE_MARGIN_S
        )
        if head and not self._core_failing():
            task = asyncio.create_task(self.deliver(row), name=f"outbox-{row.reference}")
            self._first_tries.add(task)
            task.add_done_callback(self._first_tries.discard)
        else:
            if head:
                await self.store.later(row, "waiting: the core did not answer just now", 0)
            self._wake.set()
        self.changed(row.tenant_id)
        return row

    def _core_failing(self) -> bool:
        failed = self._failed_at
        return failed is not None and asyncio.get_running_loop().time() - failed < DOWN_FOR_S

    # ------------------------------------------------------------------ sending
    async def _send(self, row: Row) -> Accepted:
        args = decode_args(row.domain, row.method, row.args)
        if row.parent_id is not None and "ticket_id" in args:
            parent = await self.store.get(row.parent_id)
            if parent is None or parent.ticket_id is None:
                raise TryLater(f"waits for its ticket ({parent.reference if parent else '?'})")
            args["ticket_id"] = parent.ticket_id
        return await send_once(
            self.client, row.domain, row.method, args, row.idempotency_key, self.attempt_timeout_s
        )

    async def _accepted(self, row: Row, accepted: Accepted) -> None:
        value = accepted.value
        ticket_id = value.id if isinstance(value, Ticket) else None
        result = None
        if value is not None:
            _, hints = _hints(row.domain, row.method)
            result = adapter(hints["return"]).dump_python(value, mode="json")
        await self.store.sent(row, result, ticket_id)
        if self._failed_at is not None:  # the core is back: what waits on backoff goes now
            self._failed_at = None
            await self.store.hurry()
            self._wake.set()
        self.changed(row.tenant_id)
        for listener in self._on_accepted:
            await _told(listener(row, value))

    async def deliver(self, row: Row) -> None:
        """One attempt at a leased row, and its outcome stored."""
        try:
            accepted = await self._send(row)
        except TryLater as later:
            self._failed_at = asyncio.get_running_loop().time()
            delay = self.backoff(row.attempts)
            if later.retry_after is not None:
                delay = max(delay, min(later.retry_after, self.retry_max_s * 10))
            await self.store.later(row, later.reason, delay)
            return
        except Refused as refused:
            log.warning("outbox %s refused by the core: %s", row.reference, refused)
            await self._set_aside(row, str(refused))
            return
        except Exception as error:  # a row that cannot even be built: set aside, never lost
            log.exception("outbox %s could not be sent", row.reference)
            await self._set_aside(row, f"{type(error).__name__}: {error}")
            return
        await self._accepted(row, accepted)

    async def _set_aside(self, row: Row, reason: str) -> None:
        held = await self.store.set_aside(row, reason, with_dependents=row.kind == "ticket")
        self.changed(row.tenant_id)
        for listener in self._on_set_aside:
            await _told(listener(held))

    def backoff(self, attempts: int) -> float:
        """Exponential, with jitter: a random wait between half and all of the doubled base."""
        ceiling = min(self.retry_max_s, RETRY_FIRST_S * 2 ** min(attempts, 20))
        return random.uniform(ceiling / 2, ceiling)

    async def drain_once(self) -> int:
        """Lease the due heads and send them, streams side by side; how many were tried."""
        rows = await self.store.claim_due(self.owner, self.attempt_timeout_s + LEASE_MARGIN_S)
        if rows:
            await asyncio.gather(*(self.deliver(row) for row in rows))
        return len(rows)

    async def run(self) -> None:
        """Drain until cancelled: at start (a restart resumes), on every new row, on a timer."""
        while True:
            self._wake.clear()  # before looking: a row stored from here on wakes the wait
            try:
                if await self.drain_once():
                    continue
                if now() >= self._next_purge:
                    self._next_purge = now() + PURGE_EVERY
                    await self.store.purge()
                wait = self.poll_s
                due = await self.store.next_due()
                if due is not None:
                    wait = max(0.0, min(wait, (due - now()).total_seconds()))
            except Exception:  # the edge database hiccuped: try again shortly
                log.exception("outbox drain failed")
                wait = self.poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def stats(self) -> tuple[int, float | None]:
        """(depth, age in seconds of the oldest pending row) for `/readyz` and `/metrics`."""
        depth, oldest = await self.store.stats()
        age = (now() - oldest).total_seconds() if oldest else None
        return depth, age


async def _told(listening: Awaitable[None]) -> None:
    """A listener's failure is its own (logged): the row's outcome is stored already."""
    try:
        await listening
    except Exception:
        log.exception("an outbox listener failed")
