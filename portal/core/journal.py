"""The journal of the core's events: what the events feed serves and webhooks deliver.

`portal core` appends every event of its embedded core to `core_events` (its id is the cursor).
An edge running the embedded core in its own process keeps no journal: its write path stays as
it was, and its events go straight to its own subscribers.

The writer is a task fed by the core's event bus: the events published while it was writing
are appended together in the next transaction, so a burst costs a few inserts, not one each.
The bus publishes an event after the write's commit, so a process that dies between a commit
and the journal's insert loses that event from the feed (at most the batch in flight; a clean
shutdown appends what is pending). Closing that gap means inserting the event in the write's own
transaction, in every domain of the embedded core; not done here.

Cursors are handed out in commit order: on PostgreSQL each append takes a transaction-level
advisory lock, so two `portal core` processes cannot commit cursors out of order (a reader could
otherwise pass over a cursor that commits after a higher one). SQLite has one writer anyway.

Events are kept `RETENTION` (7 days) and purged lazily by the writer; the highest purged cursor
is kept, so a reader asking for what is gone is told to resync (`CursorGone`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import EVENTS_RESUMED, Event
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, CoreEngine
from portal.core.embedded.rows import aware, utcnow
from portal.core.envelope import CursorGone, Page, envelope

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
PURGE_EVERY_S = 3600.0
BATCH = 200  # events per insert at most
RETRY_S = 1.0  # after a failed append
# Any constant: the key of PostgreSQL's advisory lock that orders journal appends.
_APPEND_LOCK = 0x636F7265_65767473  # "coreevts"

_e = t.core_events.c


class Journal:
    """The `core_events` table of one core database: append, read in cursor order, purge."""

    def __init__(self, engine: CoreEngine, *, retention: timedelta = RETENTION) -> None:
        self.engine = engine
        self.retention = retention
        self._appended = asyncio.Event()
        self._last_purge = time.monotonic()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    def appended(self) -> asyncio.Event:
        """Set at the next append: take it before reading, then wait on it for more."""
        return self._appended

    async def append(self, events: Sequence[Event]) -> int:
        """Journal `events` in one transaction; an event of a tenant that is gone is dropped."""
        now = utcnow()
        rows = [
            {
                "event_id": f"evt_{uuid.uuid4().hex}",
                "tenant_id": event.tenant_id,
                "type": event.type,
                "data": event.data,
                "created_at": now,
            }
            for event in events
            if event.type != EVENTS_RESUMED and event.tenant_id > 0
        ]
        if not rows:
            return 0
        try:
            await self._insert(rows)
        except IntegrityError:
            # Some tenant was deleted meanwhile: keep the others' events, one by one.
            kept = []
            for row in rows:
                try:
                    await self._insert([row])
                    kept.append(row)
                except IntegrityError:
                    log.info("event %s of a deleted tenant not journaled", row["type"])
            rows = kept
        if rows:
            self._wake()
        return len(rows)

    async def _insert(self, rows: list[dict[str, object]]) -> None:
        async with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_APPEND_LOCK)))
            await conn.execute(t.core_events.insert(), rows)

    def _wake(self) -> None:
        woken, self._appended = self._appended, asyncio.Event()
        woken.set()

    async def read(self, tenant_id: int, after: int, limit: int) -> Page:
        """The tenant's events after cursor `after`, oldest first; CursorGone when they are
        gone, or `after` is no cursor this journal handed out."""
        async with self.engine.connect() as conn:
            horizon = await _horizon(conn)
            # Read the newest cursor first: everything up to it is committed (appends commit in
            # cursor order), so a page that stops short of `limit` has seen all up to it.
            newest = max(horizon, await conn.scalar(sa.select(sa.func.max(_e.id))) or 0)
            if after < horizon or after > newest:
                raise CursorGone(newest)
            rows = (
                await conn.execute(
                    sa.select(_e.id, _e.event_id, _e.type, _e.data, _e.created_at)
                    .where((_e.tenant_id == tenant_id) & (_e.id > after) & (_e.id <= newest))
                    .order_by(_e.id)
                    .limit(limit)
                )
            ).all()
            previous: int | None = None
            if rows:
                previous = await conn.scalar(
                    sa.select(sa.func.max(_e.id)).where(
                        (_e.tenant_id == tenant_id) & (_e.id < rows[0].id)
                    )
                )
        if previous is None and horizon:
            previous = horizon  # the tenant's earlier events may have been purged
        events = []
        for row in rows:
            events.append(
                envelope(
                    event_id=row.event_id,
                    cursor=row.id,
                    previous=previous,
                    tenant_id=tenant_id,
                    type=row.type,
                    data=row.data,
                    created_at=aware(row.created_at),
                )
            )
            previous = row.id
        full = limit > 0 and len(rows) == limit
        return Page(events, rows[-1].id if full else max(after, newest))

    async def newest(self) -> int:
        """The newest cursor handed out (purged or not)."""
        async with self.engine.connect() as conn:
            newest = await conn.scalar(sa.select(sa.func.max(_e.id))) or 0
            return max(newest, await _horizon(conn))

    async def horizon(self) -> int:
        """The highest cursor purged (0: nothing purged yet)."""
        async with self.engine.connect() as conn:
            return await _horizon(conn)

    async def purge(self, now: datetime | None = None) -> int:
        """Delete events older than the retention; the number deleted."""
        cutoff = (now or utcnow()) - self.retention
        async with self.engine.begin() as conn:
            through = await conn.scalar(sa.select(sa.func.max(_e.id)).where(_e.created_at < cutoff))
            if through is None:
                return 0
            deleted = (await conn.execute(t.core_events.delete().where(_e.id <= through))).rowcount
            h = t.core_events_horizon
            updated = await conn.execute(
                h.update()
                .where((h.c.id == 1) & (h.c.purged_through < through))
                .values(purged_through=through)
            )
            if not updated.rowcount and await _horizon(conn) == 0:
                await conn.execute(h.insert().values(id=1, purged_through=through))
        return int(deleted or 0)

    async def follow(self, events: AsyncIterator[Event]) -> None:
        """Append `events` (the core's) as they come, in small batches, until `close()`.

        Returns once subscribed (the core's event stream subscribes when first read), so no
        write made after this returns goes unjournaled.
        """
        self._pump = asyncio.create_task(self._pump_events(events), name="journal-pump")
        self._writer = asyncio.create_task(self._write_forever(), name="journal-writer")
        await asyncio.sleep(0)  # the pump's first step subscribes; it was scheduled first

    async def close(self) -> None:
        """Stop following; append what is pending first."""
        for task in (self._pump, self._writer):  # no more events in, then the rest out
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._pump = self._writer = None

    async def _pump_events(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            self._queue.put_nowait(event)

    async def _write_forever(self) -> None:
        queue = self._queue
        batch: list[Event] = []
        try:
            while True:
                if not batch:
                    batch.append(await queue.get())
                while len(batch) < BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                try:
                    await self.append(batch)
                except Exception:
                    # The database refused (locked, restarting): keep the batch, try again.
                    log.exception("journaling %d events failed; retrying", len(batch))
                    await asyncio.sleep(RETRY_S)
                    continue
                batch = []
                if time.monotonic() - self._last_purge > PURGE_EVERY_S:
                    self._last_purge = time.monotonic()
                    try:
                        await self.purge()
                    except Exception:  # tried again within the hour
                        log.exception("purging the events journal failed")
        finally:
            while not queue.empty():
                batch.append(queue.get_nowait())
            if batch:
                await self.append(batch)


async def _horizon(conn: CoreConnection) -> int:
    h = t.core_events_horizon.c
    return await conn.scalar(sa.select(h.purged_through).where(h.id == 1)) or 0
