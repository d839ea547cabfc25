"""The edge's own database: what the edge must remember apart from the core.

Its own SQLAlchemy metadata, created at start (no migrations yet: two small tables), on SQLite
(`edge.db` in the data dir) or PostgreSQL (PORTAL_EDGE_DATABASE_URL). Several edge processes
share it, so what one of them saw, the others know:

- `edge_seen_events`: the id of every core event this edge has taken in, by webhook or from the
  feed. A webhook whose id is here is a replay (or a late copy of what the feed brought); an
  event of the feed whose id is here was already handed on. Kept `SEEN_KEPT` (longer than the
  core keeps events, so no copy of one can come after its id is forgotten).
- `edge_feed_cursor`: how far this edge has read the core's events feed.

- `edge_outbox`: the edge's writes to the core, stored before they are sent
  (`portal.edge.outbox`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.embedded.engine import make_engine

SEEN_KEPT = timedelta(days=8)
PURGE_EVERY = timedelta(hours=1)
FEED = "core"  # the one feed for now; a row per feed should an edge follow several

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

seen_events = sa.Table(
    "edge_seen_events",
    metadata,
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_edge_seen_events_seen_at", "seen_at"),
)

feed_cursors = sa.Table(
    "edge_feed_cursors",
    metadata,
    sa.Column("feed", sa.String(40), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=False),
)

# The edge's writes to the core, each stored before it is sent (`portal.edge.outbox.store`).
outbox = sa.Table(
    "edge_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("reference", sa.String(20), nullable=False, unique=True),
    sa.Column("tenant_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # ticket, reply, rating, feedback, ...
    sa.Column("domain", sa.String(20), nullable=False),
    sa.Column("method", sa.String(40), nullable=False),
    sa.Column("stream", sa.String(80), nullable=False),  # sent in order within a stream
    sa.Column("parent_id", sa.BigInteger, nullable=True),  # the pending ticket a reply waits for
    sa.Column("ticket_id", sa.Integer, nullable=True),  # the core's ticket, once known
    sa.Column("customer_id", sa.Integer, nullable=True),
    sa.Column("email", sa.String(320), nullable=False, server_default=""),
    sa.Column("args", sa.Text, nullable=False),  # the contract call's arguments, as JSON
    sa.Column("idempotency_key", sa.String(300), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # pending, sent, set_aside, discarded
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(40), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # the core's answer, as JSON
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_edge_outbox_state_stream", "state", "stream", "id"),
    sa.Index("ix_edge_outbox_tenant_state", "tenant_id", "state"),
    sa.Index("ix_edge_outbox_ticket", "ticket_id"),
    sa.Index("ix_edge_outbox_key", "tenant_id", "idempotency_key"),
)


def _now() -> datetime:
    return datetime.now(UTC)


class EdgeDatabase:
    """The edge's database: `start()` creates what is missing, `close()` lets go."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._next_purge = _now()

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    async def seen(self, event_id: str) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(seen_events.c.event_id).where(seen_events.c.event_id == event_id)
            )
        return found is not None

    async def claim(self, event_id: str) -> bool:
        """Record that this edge takes event `event_id` in: True for the first claim only, in
        every process sharing this database."""
        now = _now()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY
            async with self.engine.begin() as conn:
                await conn.execute(
                    seen_events.delete().where(seen_events.c.seen_at < now - SEEN_KEPT)
                )
        try:
            async with self.engine.begin() as conn:
                await conn.execute(seen_events.insert().values(event_id=event_id, seen_at=now))
        except IntegrityError:
            return False
        return True

    async def cursor(self) -> int | None:
        """How far the feed has been read; None before the first read."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                sa.select(feed_cursors.c.cursor).where(feed_cursors.c.feed == FEED)
            )

    async def advance(self, cursor: int) -> None:
        """Move the cursor forward to `cursor` (never back: another process may be ahead)."""
        c = feed_cursors.c
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                feed_cursors.update()
                .where((c.feed == FEED) & (c.cursor < cursor))
                .values(cursor=cursor)
            )
            if moved.rowcount:
                return
            if await conn.scalar(sa.select(c.cursor).where(c.feed == FEED)) is not None:
                return
        await self._insert_or_set(cursor, forward_only=True)

    async def reset(self, cursor: int) -> None:
        """Set the cursor, backwards too (the core said to resync from there)."""
        c = feed_cursors.c
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                feed_cursors.update().where(c.feed == FEED).values(cursor=cursor)
            )
        if not moved.rowcount:
            await self._insert_or_set(cursor, forward_only=False)

    async def _insert_or_set(self, cursor: int, *, forward_only: bool) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(feed_cursors.insert().values(feed=FEED, cursor=cursor))
        except IntegrityError:  # another process made the row meanwhile
            if forward_only:
                await self.advance(cursor)
            else:
                await self.reset(cursor)
