"""Writes asked for at the same moment share one transaction.

Tickets are the writes that need it (`EmbeddedTickets` makes every ticket through here).

A ticket is four small statements and a commit, and the commit costs more than the four: on
SQLite it writes every page the ticket touched to the log again (the tenant's number counter,
the ends of the ticket indexes), and the checkpoint later copies them back. When submissions
come in together (a busy form, a chat queue turning into tickets), the tickets asked for within
one turn of the event loop are made in one transaction: those pages are written once per batch,
not once per ticket. Nothing waits to gather: a ticket asked for alone is made at once in its
own transaction, as before.

Only on SQLite, whose writes this process runs one at a time anyway. PostgreSQL runs concurrent
transactions side by side and groups their commits itself; gathering them would queue them.

Every caller hears its own outcome, as if its write had been alone. A write that fails before
writing anything (a ticket whose key is taken, or whose department is gone: the ticket's write
looks first) leaves nothing to undo, and the batch goes on without it. One that fails after
writing (a number raced by another process, say) ends the transaction: all of it is rolled
back, and every write of the batch is made again in a transaction of its own. A savepoint
around each write would undo just that one, but SQLite then copies every page a write touches
into a journal of the savepoint first: about 12% of a ticket's instructions, for failures that
hardly happen. If the commit itself fails, every caller of the batch hears that error and none
of its writes exists.

Each transaction takes SQLite's write lock as it begins (`begin(immediate=True)`), so a write
may read before it writes (the ticket reads its key, number and requester in one statement)
with no other process able to write in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from portal.core.embedded.engine import CoreConnection, CoreEngine, InlineConnection, InlineEngine

T = TypeVar("T")

# Tickets in one transaction: at ~0.1 ms of statements each, a batch holds the loop ~2 ms.
MAX_BATCH = 20

Write = Callable[[CoreConnection, Any], Awaitable[T]]


class WriteBatches(Generic[T]):
    """Runs `write(conn, item)` for items asked for together in one transaction of `engine`."""

    def __init__(self, engine: CoreEngine, write: Write[T], max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.write = write
        self.max_batch = max_batch
        self._pending: list[tuple[Any, asyncio.Future[T]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, item: Any) -> T:
        """What `write` made of `item`, or what it raised; committed when this returns."""
        if not isinstance(self.engine, InlineEngine):
            async with self.engine.begin() as conn:
                return await self.write(conn, item)
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writer is None or self._writer.done():
            # The writer starts on the loop's next turn: whatever else this turn asks for joins.
            self._writer = asyncio.create_task(self._write_pending(), name="write-batches")
        return await done

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                await self._write_batch(batch)
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
                if not isinstance(exc, Exception):
                    for _, done in self._pending:
                        done.set_exception(RuntimeError("the core is stopping"))
                    self._pending = []
                    raise
            if self._pending:
                await asyncio.sleep(0)  # between batches, let requests in flight have their turn

    async def _write_batch(self, batch: list[tuple[Any, asyncio.Future[T]]]) -> None:
        if len(batch) == 1:  # alone: its own transaction, rolled back whole if it fails
            await self._write_alone(*batch[0])
            return
        outcomes: list[tuple[asyncio.Future[T], Any, Exception | None]] = []
        try:
            async with self._begin() as conn:
                for item, done in batch:
                    written = conn.changes()
                    try:
                        made = await self.write(conn, item)
                    except Exception as exc:
                        if conn.changes() != written:
                            raise _WroteThenFailed from exc  # (rolls the batch back)
                        outcomes.append((done, None, exc))
                    else:
                        outcomes.append((done, made, None))
        except _WroteThenFailed:
            for item, done in batch:
                await self._write_alone(item, done)
            return
        # Only now, committed: each caller hears its own outcome.
        for done, made, error in outcomes:
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(made)

    async def _write_alone(self, item: Any, done: asyncio.Future[T]) -> None:
        try:
            async with self._begin() as conn:
                made = await self.write(conn, item)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(made)

    def _begin(self) -> AbstractAsyncContextManager[InlineConnection]:
        assert isinstance(self.engine, InlineEngine)
        return self.engine.begin(immediate=True)


class _WroteThenFailed(Exception):
    """A write of a batch failed after writing: only the transaction's end undoes that."""
