"""SQLite's inline engine: one writer connection, one reader connection, both kept open."""

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import create_async_engine

from portal.core.contract import TicketDraft
from portal.core.embedded import engine as engine_module
from portal.core.embedded.core import EmbeddedCore
from portal.core.embedded.engine import PostgresEngine, fetch, fetch_numbered
from tests.conftest import postgres_database

TABLE = sa.table("tenants", sa.column("name"))
SQLITE = sqlite_dialect.dialect()


async def test_blocks_reuse_one_writer_and_one_reader(tmp_path: Path):
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    checkouts: list[Any] = []
    sa.event.listen(core.engine.sync_engine, "checkout", lambda *args: checkouts.append(args))
    try:
        await core.tenants.create_tenant("acme", "Acme")
        await core.tenants.get_tenant("acme")
        opened = len(checkouts)
        assert opened <= 2  # the writer and the reader, if the migrations had not opened them
        for n in range(3):
            await core.tenants.create_tenant(f"t{n}", "T")
            await core.tenants.get_tenant(f"t{n}")
        assert len(checkouts) == opened
    finally:
        await core.close()


async def test_reads_see_each_commit_and_a_write_in_a_read_block_is_undone(tmp_path: Path):
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    try:
        tenant = await core.tenants.create_tenant("acme", "Acme")
        async with core.engine.connect() as reader:
            names = sa.select(sa.column("name")).select_from(TABLE)
            assert (await reader.execute(names)).scalars().all() == ["Acme"]
            async with core.engine.begin() as writer:
                await writer.execute(sa.update(TABLE).values(name="Acme Inc"))
            # Committed by the writer: the reader's next statement sees it.
            assert (await reader.execute(names)).scalars().all() == ["Acme Inc"]
            await reader.execute(sa.update(TABLE).values(name="Never"))
        # The read block's write did not stay, and holds no lock a writer would wait for.
        async with core.engine.begin() as writer:
            await writer.execute(sa.update(TABLE).values(name="Acme Ltd"))
        assert (await core.tenants.get_tenant("acme")).name == "Acme Ltd"
        assert tenant.id == (await core.tenants.get_tenant("acme")).id
    finally:
        await core.close()


async def test_the_log_is_checkpointed_off_the_loop_every_so_many_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The writer never checkpoints inside a commit; the engine's own checkpoint, in a thread,
    copies the log into the database file after CHECKPOINT_EVERY write blocks.

    (What it copied is SQLite's answer, not a copy of the file read without its log: a
    checkpoint that ran beside the writer's commits stops short of the newest frames, and such
    a file alone is no consistent database, nor meant to be.)"""
    monkeypatch.setattr(engine_module, "CHECKPOINT_EVERY", 5)
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    threads: set[str] = set()
    checkpointed = engine_module.InlineEngine._checkpointed

    def watched(self: engine_module.InlineEngine) -> tuple[int, int, int]:
        threads.add(threading.current_thread().name)
        return checkpointed(self)

    monkeypatch.setattr(engine_module.InlineEngine, "_checkpointed", watched)
    try:
        async with core.engine.begin() as writer:
            auto = (await writer.execute(sa.text("PRAGMA wal_autocheckpoint"))).scalar()
        assert auto == 0
        await core.engine.checkpoint_finished()  # (one the migrations' writes may have begun)
        threads.clear()
        before = (tmp_path / "core.db").read_bytes()
        # Five write blocks start a checkpoint somewhere among them; a few pages each, they are
        # far from SQLite's own 1,000-page threshold.
        for n in range(5):
            await core.tenants.create_tenant(f"t{n}", "T")
        await core.engine.checkpoint_finished()
        assert threads and threading.main_thread().name not in threads
        assert core.engine.last_checkpoint is not None
        busy, frames, copied = core.engine.last_checkpoint
        assert not busy and 0 < copied <= frames
        assert (tmp_path / "core.db").read_bytes() != before  # only a checkpoint writes it
    finally:
        await core.close()


async def test_statement_journals_and_sorts_stay_in_memory(tmp_path: Path):
    """A chat batch's UPDATE of many conversations keeps more pages in its statement journal
    than SQLite holds in memory by default; with a temp file it would create, write and delete
    that file on the event loop. Both connections keep temporary storage in memory."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    try:
        async with core.engine.begin() as writer:
            assert (await writer.execute(sa.text("PRAGMA temp_store"))).scalar() == 2  # MEMORY
        async with core.engine.connect() as reader:
            assert (await reader.execute(sa.text("PRAGMA temp_store"))).scalar() == 2
    finally:
        await core.close()


async def test_statements_run_by_sqlite3_store_and_read_what_sqlalchemy_would(tmp_path: Path):
    """`fetch` hands the hottest statements to `sqlite3` unless something listens to the engine's
    statements; the rows either way are the same, and so is what they read."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    engine = core.engine.sync_engine

    def listening(*_args: Any) -> None:
        pass

    try:
        tenant = await core.tenants.create_tenant("acme", "Acme")
        fields = {"when": "2024-05-31", "n": 3.5, "picked": ["a", "b"], "ok": True}
        draft = TicketDraft("Broken", "It broke", "Pat@Example.com", "Pat", custom_fields=fields)
        sa.event.listen(engine, "before_cursor_execute", listening)
        by_sqlalchemy = await core.tickets.create_ticket(tenant.id, draft, "one")
        sa.event.remove(engine, "before_cursor_execute", listening)
        by_sqlite3 = await core.tickets.create_ticket(tenant.id, draft, "two")
        stored = "SELECT created_at, updated_at, custom_fields, status, priority FROM tickets"
        async with core.engine.connect() as conn:
            first, second = (await conn.execute(sa.text(stored + " ORDER BY id"))).all()
        assert len(first[0]) == len(second[0]) and first[2:] == second[2:]
        for made in (by_sqlalchemy, by_sqlite3):
            assert await core.tickets.get_ticket(tenant.id, made.id) == made
            assert made.custom_fields == fields
        sa.event.listen(engine, "before_cursor_execute", listening)
        assert await core.tickets.get_ticket(tenant.id, by_sqlite3.id) == by_sqlite3
        sa.event.remove(engine, "before_cursor_execute", listening)
    finally:
        await core.close()


async def test_sqlite3_writes_datetimes_as_sqlalchemy_does_and_missing_values_are_refused(
    tmp_path: Path,
):
    """`fetch` makes SQLite's DateTime text itself (faster); it must be SQLAlchemy's text for
    every kind of value, and a parameter nobody gave is still SQLAlchemy's error."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    stamps = sa.table("stamps", sa.column("id", sa.Integer), sa.column("at", sa.DateTime()))
    write = stamps.insert().values(at=sa.bindparam("at_value", type_=sa.DateTime()))
    read = sa.select(stamps.c.at).where(stamps.c.id == sa.bindparam("wanted"))
    moments = [
        datetime(2026, 11, 30, 16, 5, 7, 123456),
        datetime(2026, 11, 30, 16, 5, 7),  # (no microseconds: isoformat alone would drop them)
        datetime(2026, 11, 30, 16, 5, 7, 1, tzinfo=UTC),
        datetime(2026, 11, 30, 18, 5, 7, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(999, 1, 2, 3, 4, 5, 6),
    ]
    try:
        async with core.engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE stamps (id INTEGER PRIMARY KEY, at TEXT)"))
        for n, moment in enumerate(moments, 1):
            async with core.engine.begin() as conn:
                await fetch(conn, write, {"at_value": moment})
            expected = sa.DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)(moment)
            async with core.engine.connect() as conn:
                text = await conn.execute(sa.text(f"SELECT at FROM stamps WHERE id = {n}"))
                assert text.scalar() == expected
                [(read_back,)] = await fetch(conn, read, {"wanted": n})
                assert read_back == moment.replace(tzinfo=None)
        with pytest.raises(sa.exc.InvalidRequestError, match="at_value"):
            async with core.engine.begin() as conn:
                await fetch(conn, write, {})
    finally:
        await core.close()


async def test_numbered_rows_go_in_place_as_they_would_by_name(tmp_path: Path):
    """`fetch_numbered` puts rows of values straight among a statement's own values (a chat
    batch's statements), converted by their types once per distinct value; a statement whose
    rows are not laid out one after another gets them by name, as does SQLAlchemy's path while
    something listens. All store the same; a row short of a value is refused."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    engine = core.engine.sync_engine
    marks = sa.table(
        "marks",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("at", sa.DateTime()),
        sa.column("ok", sa.Boolean()),
    )
    at, ok = sa.bindparam("at_0", type_=sa.DateTime()), sa.bindparam("ok_0", type_=sa.Boolean())
    rows = sa.union_all(
        *(
            sa.select(
                sa.bindparam(f"at_{n}", type_=sa.DateTime()).label("at"),
                sa.bindparam(f"ok_{n}", type_=sa.Boolean()).label("ok"),
            )
            for n in range(3)
        )
    ).subquery()
    # The statement's own value ("fixed") comes ahead of the rows.
    in_place = marks.insert().from_select(
        ["kind", "at", "ok"], sa.select(sa.literal("fixed"), rows.c.at, rows.c.ok)
    )
    by_name = marks.insert().values(kind="other", ok=ok, at=at)
    moment = datetime(2026, 11, 30, 16, 5, 7, 123456)
    values = [(moment, True), (moment, False), (moment + timedelta(seconds=1), True)]

    def listening(*_args: Any) -> None:
        pass

    stored = sa.select(marks.c.kind, marks.c.at, marks.c.ok).order_by(marks.c.id)
    try:
        async with core.engine.begin() as conn:
            await conn.execute(
                sa.text("CREATE TABLE marks (id INTEGER PRIMARY KEY, kind TEXT, at TEXT, ok INT)")
            )
        async with core.engine.begin() as conn:
            await fetch_numbered(conn, in_place, ("at", "ok"), values)
            # (Given as (ok, at): not the order of the statement's placeholders.)
            await fetch_numbered(conn, by_name, ("ok", "at"), [(True, moment)])
        sa.event.listen(engine, "before_cursor_execute", listening)
        async with core.engine.begin() as conn:
            await fetch_numbered(conn, in_place, ("at", "ok"), values)
        sa.event.remove(engine, "before_cursor_execute", listening)
        async with core.engine.connect() as conn:
            found = [tuple(row) for row in (await conn.execute(stored)).all()]
        fixed = [("fixed", when, flag) for when, flag in values]
        assert found == fixed + [("other", moment, True)] + fixed
        with pytest.raises(ValueError, match="a value for each"):
            async with core.engine.begin() as conn:
                await fetch_numbered(conn, in_place, ("at", "ok"), [*values[:2], (moment,)])
    finally:
        await core.close()


async def test_a_write_block_commits_all_its_statements_or_none(tmp_path: Path):
    """A block of `fetch` statements ends `sqlite3`'s transaction itself; one that ran a
    statement through SQLAlchemy too ends SQLAlchemy's. Either way: all of it, or none."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{tmp_path}/core.db")
    await core.start()
    notes = sa.table("notes", sa.column("name", sa.String))
    add = notes.insert().values(name=sa.bindparam("new_name"))
    names = sa.select(notes.c.name).order_by(notes.c.name)
    try:
        async with core.engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE notes (name TEXT NOT NULL)"))
        for through_sqlalchemy in (False, True):
            with pytest.raises(RuntimeError):
                async with core.engine.begin() as conn:
                    await fetch(conn, add, {"new_name": "half"})
                    if through_sqlalchemy:
                        await conn.execute(notes.insert().values(name="halfway"))
                    raise RuntimeError("the block failed")
            async with core.engine.connect() as conn:
                assert (await conn.execute(names)).scalars().all() == []
            async with core.engine.begin() as conn:
                await fetch(conn, add, {"new_name": "one"})
                if through_sqlalchemy:
                    await conn.execute(notes.insert().values(name="two"))
            async with core.engine.connect() as conn:
                stored = (await conn.execute(names)).scalars().all()
            assert stored == (["one", "two"] if through_sqlalchemy else ["one"])
            async with core.engine.begin() as conn:
                await conn.execute(notes.delete())
    finally:
        await core.close()


@pytest.mark.postgres
async def test_a_postgres_connection_that_died_while_idle_is_replaced():
    """(A server restart, or an idle timeout, ends pooled connections without a word.)"""
    pid_query = sa.text("SELECT pg_backend_pid()")
    async with postgres_database(empty=True) as url:
        engine = PostgresEngine(
            create_async_engine(url, pool_size=1, max_overflow=0), idle_ping_s=0
        )
        try:
            async with engine.connect() as conn:
                first = (await conn.execute(pid_query)).scalar()
            admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", first)
            finally:
                await admin.close()
            async with engine.connect() as conn:
                second = (await conn.execute(pid_query)).scalar()
            assert second != first
        finally:
            await engine.dispose()
