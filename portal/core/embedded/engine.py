"""Database engines for the embedded core: asyncpg for PostgreSQL, SQLite run inline.

SQLite answers a primary-key read in about 0.05 ms, but through aiosqlite each statement is
several hops between the event loop and a worker thread (about 0.7 ms). So on SQLite the core
runs statements on the event loop itself, through `InlineEngine`, which offers the small part
of SQLAlchemy's `AsyncEngine` API the core uses (`connect()`, `begin()`, `execute`, `run_sync`).

Why this is safe: a block (`async with engine.begin() as conn:`) never gives the loop away
between its statements, because `InlineConnection.execute` does not suspend. Write blocks of
this process are still serialized by an `asyncio.Lock`, in case a block ever awaits something
real. Another process holding SQLite's write lock makes a writer here wait up to
`BUSY_TIMEOUT_S` on the loop; several processes should share PostgreSQL instead.

SQLite has one writer at a time anyway, so every write block of this process runs on one
connection kept open for it (the writer), and every read block on another (the reader): a
ticket's transaction or a page's reads then cost no checkout from a pool and no reset on return,
about a tenth of a page's database time. Sharing the reader is safe because its blocks only
read: `sqlite3` begins a transaction only before a write, so each SELECT sees what is committed
(WAL lets it read while the writer writes), and a block that wrote anyway is rolled back at its
end, as a pool would on return.

SQLite copies the write-ahead log back into the database (a checkpoint) inside whichever commit
crosses its threshold, which holds that commit, and so the loop, for 10-15 ms. So the writer's
automatic checkpoints are off, and every `CHECKPOINT_EVERY` write blocks the engine runs a PASSIVE
checkpoint in a worker thread on a connection of its own: it blocks neither readers nor the
writer, and `sqlite3` lets go of the GIL while SQLite works.

The hottest statements (a ticket's writes, a page's session and list reads) go through `fetch`:
on SQLite, SQLAlchemy compiles such a statement once (`sqlite_plans`) and `sqlite3` runs it
directly, which spares SQLAlchemy's per-execution work (about 25 µs a statement, twice what
SQLite itself takes). The values are converted by the statement's own types in both directions,
and driver errors become SQLAlchemy's (`IntegrityError`, ...), so callers cannot tell. While
anything listens to the engine's statement events (tests counting statements), `fetch` takes
SQLAlchemy's path, so that they see every statement. On PostgreSQL `fetch` is
`execute(...).all()`. `fetch_numbered` is `fetch` for statements of numbered rows (a chat
batch's): on SQLite the rows' values go into place as they are, with no dict of every row's
names built and picked from. `changed_rows` and `inserted_id` run writes whose only answer is a
count or a new row's id: on SQLite without RETURNING, which costs SQLite a temporary table.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from portal.core.embedded import sqlite_plans as plans

R = TypeVar("R")
log = logging.getLogger(__name__)

# How long a writer waits for another process's SQLite write lock before giving up.
BUSY_TIMEOUT_S = 5
# Write blocks between two checkpoints of the write-ahead log; at ~10 pages a ticket, about the
# 1,000 pages at which SQLite itself would checkpoint.
CHECKPOINT_EVERY = 100
# Passes of one checkpoint at most, each copying what the writer appended during the last.
CATCH_UP_PASSES = 8
# A pooled PostgreSQL connection idle this long is pinged before it is used again.
IDLE_PING_S = 10.0


class InlineConnection:
    """A sync SQLAlchemy connection behind the awaitable methods the core calls."""

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection
        # Whether something listens to statements (tests counting them, say): then they go
        # through SQLAlchemy, which tells the listeners. Asked once a block, not per statement.
        dispatch = sync_connection.dispatch
        self._listened = bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)

    def rows(self, statement: Any, parameters: dict[str, Any]) -> list[Any]:
        """The rows of a statement built once, run by `sqlite3` (see the module docstring)."""
        conn = self.sync_connection
        if self._listened:
            return _all(conn.execute(statement, parameters))
        plan = plans.plan_for(statement, conn.dialect)
        return self._run(plan, plans.values(plan, parameters))

    def numbered_rows(
        self, statement: Any, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> list[Any]:
        """The rows of a statement built once whose parameters are `NAME_N`, row N's value of
        NAME: each row's values given in `names` order, put in place as they are (no dict of
        every row's names to build and pick from: most of a chat batch's Python)."""
        conn = self.sync_connection
        if not self._listened:
            plan = plans.plan_for(statement, conn.dialect)
            placed = plans.placed_values(plan, names, rows)
            if placed is not None:
                return self._run(plan, placed)
        # Something listens to statements, or the rows are not laid out one after another.
        return self.rows(statement, plans.numbered(names, rows))

    def written(self, statement: Any, parameters: dict[str, Any]) -> tuple[int, int | None]:
        """(rows changed, the last row id inserted) by a statement built once, without RETURNING
        (see `changed_rows`)."""
        conn = self.sync_connection
        if self._listened:
            result = conn.execute(statement, parameters)
            return result.rowcount, result.lastrowid
        plan = plans.plan_for(statement, conn.dialect)
        cursor = self._cursor(plan, plans.values(plan, parameters))
        return cursor.rowcount, cursor.lastrowid

    def _cursor(self, plan: plans.Plan, values: list[Any]) -> sqlite3.Cursor:
        dbapi = self.sync_connection.connection.dbapi_connection
        assert dbapi is not None
        try:
            return dbapi.execute(plan.sql, values)
        except sqlite3.Error as exc:
            raise self._error(plan, values, exc) from exc

    def _error(self, plan: plans.Plan, values: list[Any], exc: sqlite3.Error) -> Exception:
        return _translated(plan.sql, values, exc, self.sync_connection)

    def _run(self, plan: plans.Plan, values: list[Any]) -> list[Any]:
        cursor = self._cursor(plan, values)
        try:
            found = cursor.fetchall()
        except sqlite3.Error as exc:  # (met while stepping through the rows)
            raise self._error(plan, values, exc) from exc
        if not plan.out:
            return [plan.row._make(row) for row in found]
        converted = []
        for row in found:
            values = list(row)
            for i, convert in plan.out:
                values[i] = convert(values[i])
            converted.append(plan.row._make(values))
        return converted

    def changes(self) -> int:
        """Rows written through this connection since it opened (`sqlite3`'s count): unchanged
        across a failed block of statements, it wrote nothing."""
        dbapi: Any = self.sync_connection.connection.dbapi_connection
        return int(dbapi.total_changes)

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.scalar(statement, parameters)

    async def run_sync(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return fn(self.sync_connection, *args, **kwargs)

    async def commit(self) -> None:
        self.sync_connection.commit()

    async def rollback(self) -> None:
        self.sync_connection.rollback()


def _end(writer: Connection, *, commit: bool) -> None:
    """End a write block's transaction. A block of `fetch` statements only has `sqlite3`'s own,
    which is ended directly: SQLAlchemy's transaction around it cost as much CPU as a chat
    batch's Python. A block that ran a statement through SQLAlchemy ends SQLAlchemy's."""
    dbapi: Any = writer.connection.dbapi_connection
    managed = writer.in_transaction()
    if not commit:
        writer.rollback() if managed else dbapi.rollback()
        return
    try:
        writer.commit() if managed else dbapi.commit()
    except BaseException:
        writer.rollback() if writer.in_transaction() else dbapi.rollback()
        raise


def _translated(sql: str, values: Any, exc: sqlite3.Error, conn: Connection) -> Exception:
    """The driver's error as SQLAlchemy's (`IntegrityError`, ...), as callers expect."""
    return sa.exc.DBAPIError.instance(sql, values, exc, sqlite3.Error, dialect=conn.dialect)


def _begin_immediate(writer: Connection) -> None:
    dbapi: Any = writer.connection.dbapi_connection
    try:
        dbapi.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:  # (another process held the lock past BUSY_TIMEOUT_S)
        raise _translated("BEGIN IMMEDIATE", (), exc, writer) from exc


class InlineEngine:
    """SQLite through the standard `sqlite3` driver, statements run on the event loop."""

    def __init__(self, url: str) -> None:
        sync_url = sa.make_url(url).set(drivername="sqlite+pysqlite")
        self.sync_engine: Engine = sa.create_engine(
            sync_url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        self.url = sync_url
        self.dialect = self.sync_engine.dialect
        self._write_lock = asyncio.Lock()
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._writes = 0
        self._checkpoint: asyncio.Future[tuple[int, int, int]] | None = None
        # The last checkpoint's (busy, frames in the log, frames copied into the database).
        self.last_checkpoint: tuple[int, int, int] | None = None

    def _open(self, conn: Connection | None) -> Connection:
        """`conn` if usable, else a new connection (after an error invalidated the last one)."""
        if conn is None or conn.closed or conn.invalidated:
            return self.sync_engine.connect()
        return conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        """A block of reads on the reader."""
        reader = self._reader = self._open(self._reader)
        try:
            yield InlineConnection(reader)
        finally:
            if reader.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                reader.rollback()  # a write in a read block is undone, as on a pool's return

    @asynccontextmanager
    async def begin(self, *, immediate: bool = False) -> AsyncIterator[InlineConnection]:
        """A transaction on the writer: committed at the end of the block, rolled back on error.

        `sqlite3` begins it before the block's first write. With `immediate` it begins at once,
        with SQLite's write lock (waiting for another process's, if need be): then what the
        block reads before it writes is no snapshot another process could overtake."""
        async with self._write_lock:
            writer = self._writer = self._open(self._writer)
            try:
                if immediate:
                    _begin_immediate(writer)
                yield InlineConnection(writer)
            except BaseException:
                _end(writer, commit=False)
                raise
            _end(writer, commit=True)
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._writes = 0
            self._checkpoint = asyncio.get_running_loop().run_in_executor(None, self._checkpointed)
            self._checkpoint.add_done_callback(self._checkpoint_done)

    def prepare(self, statements: Iterable[Any]) -> None:
        """Compile statements for `fetch` now rather than at their first use: the largest take
        milliseconds, which the first chat message of a busy moment would otherwise wait for."""
        for statement in statements:
            plans.plan_for(statement, self.dialect)

    def _checkpointed(self) -> tuple[int, int, int]:
        """In a worker thread: copy what the log holds into the database, blocking no one;
        SQLite's answer to the last pass: (busy, frames in the log, frames copied).

        SQLite starts the log over, rather than growing it, at the first write after a
        checkpoint copied all of it. Under steady writes the writer appends while a pass copies,
        so a single pass never left it all copied, and the log grew without bound (400 MB in
        20 s of form submissions). So the passes go on, each copying what came meanwhile, until
        one finds nothing new (at most CATCH_UP_PASSES)."""
        conn = sqlite3.connect(self.url.database or "", timeout=BUSY_TIMEOUT_S)
        try:
            seen = -1
            for _ in range(CATCH_UP_PASSES):
                busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if busy or frames == seen:
                    break
                seen = frames
            return busy, frames, copied
        finally:
            conn.close()

    def _checkpoint_done(self, future: asyncio.Future[tuple[int, int, int]]) -> None:
        self._checkpoint = None
        if future.cancelled():
            return
        if future.exception() is not None:
            # The log only grows until the next attempt: worth a line, not a failed request.
            log.warning("checkpoint of %s failed: %r", self.url.database, future.exception())
            return
        self.last_checkpoint = future.result()

    async def checkpoint_finished(self) -> None:
        """Return once the checkpoint under way, if any, has ended."""
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])

    async def dispose(self) -> None:
        await self.checkpoint_finished()
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None
        self.sync_engine.dispose()


class PostgresEngine:
    """PostgreSQL on asyncpg: SQLAlchemy's `AsyncEngine`, with read blocks in autocommit and
    pooled connections checked only after they sat idle.

    A read block in a transaction costs two round trips besides its reads (BEGIN, and the
    ROLLBACK when the connection goes back to the pool); in autocommit it costs none. Under READ
    COMMITTED each statement sees what is committed when it starts either way, so reads see the
    same. Write blocks (`begin()`) are transactions as before.

    SQLAlchemy's `pool_pre_ping` pings before every use: a round trip and ~150 µs of CPU per
    block, a third of a one-row read. A connection in steady use has just proved itself, so only
    one idle for `idle_ping_s` is pinged (a dead one is replaced, as pre-ping would); one that
    dies in use fails its block, and SQLAlchemy then replaces the whole pool.
    """

    def __init__(self, engine: AsyncEngine, idle_ping_s: float = IDLE_PING_S) -> None:
        self.engine = engine
        self.sync_engine = engine.sync_engine
        self.dialect = engine.dialect
        self.url = engine.url
        self.idle_ping_s = idle_ping_s
        sa.event.listen(engine.sync_engine.pool, "checkin", self._returned)
        sa.event.listen(engine.sync_engine.pool, "checkout", self._ping_if_idle)

    @staticmethod
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def _ping_if_idle(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")  # None: new, never used
        if idle_since is None or time.monotonic() - idle_since < self.idle_ping_s:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:
            # The pool tries again with a new connection.
            raise sa.exc.DisconnectionError("the connection was closed meanwhile") from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            # (Only a setting on the driver's connection; the pool restores it on return.)
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def begin(self) -> Any:
        return self.engine.begin()

    async def dispose(self) -> None:
        await self.engine.dispose()


CoreEngine = PostgresEngine | InlineEngine
CoreConnection = AsyncConnection | InlineConnection


async def fetch(conn: CoreConnection, statement: Any, parameters: dict[str, Any]) -> list[Any]:
    """The rows (tuples) of a statement built once: on SQLite run by `sqlite3` itself."""
    if isinstance(conn, InlineConnection):
        return conn.rows(statement, parameters)
    return _all(await conn.execute(statement, parameters))


async def changed_rows(conn: CoreConnection, statement: Any, parameters: dict[str, Any]) -> int:
    """How many rows an UPDATE (or an INSERT that may do nothing) built once changed.

    On SQLite the statement has no RETURNING and `sqlite3` counts the rows: SQLite answers
    RETURNING by building a temporary table for the statement, about 19,000 instructions, more
    than a ticket's counter update costs without it. On PostgreSQL the statement returns a row
    for each it changed (`ticket_queries` builds each statement for its dialect)."""
    if isinstance(conn, InlineConnection):
        return conn.written(statement, parameters)[0]
    return len(_all(await conn.execute(statement, parameters)))


async def inserted_id(
    conn: CoreConnection, statement: Any, parameters: dict[str, Any]
) -> int | None:
    """The id of the one row an INSERT built once made, None when it made none (ON CONFLICT DO
    NOTHING): on SQLite the row id `sqlite3` reports (the statement has no RETURNING, as for
    `changed_rows`), on PostgreSQL what the statement returns."""
    if isinstance(conn, InlineConnection):
        changed, row_id = conn.written(statement, parameters)
        return row_id if changed == 1 else None
    rows = _all(await conn.execute(statement, parameters))
    return rows[0][0] if rows else None


async def fetch_numbered(
    conn: CoreConnection, statement: Any, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """`fetch` for a statement whose parameters are numbered rows (`NAME_N`: row N's NAME),
    each row given as its values in `names` order."""
    if isinstance(conn, InlineConnection):
        return conn.numbered_rows(statement, names, rows)
    return _all(await conn.execute(statement, plans.numbered(names, rows)))


async def first_row(conn: CoreConnection, statement: Any, parameters: dict[str, Any]) -> Any:
    """The first row of a statement built once (or None), as `fetch` runs it."""
    rows = await fetch(conn, statement, parameters)
    return rows[0] if rows else None


def _all(result: CursorResult[Any]) -> list[Any]:
    return list(result.all()) if result.returns_rows else []


def make_engine(url: str) -> CoreEngine:
    """The engine for `url`: inline SQLite with WAL, or an asyncpg pool for PostgreSQL."""
    if not url.startswith("sqlite"):
        return PostgresEngine(create_async_engine(url, pool_size=10, max_overflow=10))
    engine = InlineEngine(url)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers go on while one writer writes; NORMAL sync is safe with WAL.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Statement journals and sorts in memory: a chat batch's UPDATE of 16 conversations
        # keeps 64 KiB of pages, past which SQLite would spill them to a temp file it creates,
        # writes and deletes on the event loop (a tenth of the batches, at 500 messages/s).
        cur.execute("PRAGMA temp_store=MEMORY")
        # The engine checkpoints in a worker thread instead (see the module's docstring).
        cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    return engine
