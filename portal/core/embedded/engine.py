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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

R = TypeVar("R")

# How long a writer waits for another process's SQLite write lock before giving up.
BUSY_TIMEOUT_S = 5


class InlineConnection:
    """A sync SQLAlchemy connection behind the awaitable methods the core calls."""

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

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

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        with self.sync_engine.connect() as conn:
            yield InlineConnection(conn)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[InlineConnection]:
        async with self._write_lock:
            with self.sync_engine.begin() as conn:
                yield InlineConnection(conn)

    async def dispose(self) -> None:
        self.sync_engine.dispose()


CoreEngine = AsyncEngine | InlineEngine
CoreConnection = AsyncConnection | InlineConnection


def make_engine(url: str) -> CoreEngine:
    """The engine for `url`: inline SQLite with WAL, or an asyncpg pool for PostgreSQL."""
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine = InlineEngine(url)

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers go on while one writer writes; NORMAL sync is safe with WAL.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine
