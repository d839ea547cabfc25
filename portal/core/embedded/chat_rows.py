"""The embedded chat's rows: statements built once, reading messages and writing them.

Every chat message runs these statements; built once with bound parameters, they skip
SQLAlchemy's statement building and cache-key work on each call (about 4x faster on SQLite).
Messages come in batches (`EmbeddedChat.post_chat_messages`): each is one INSERT, unless its
client id is stored already (on SQLite the INSERT reads the conversation, so a conversation of
another tenant gets nothing), and then one UPDATE moves the markers of every conversation the
batch wrote to; its RETURNING rows are the conversations after it, so nobody reads them back.
PostgreSQL locks each conversation's row before its INSERT (see `portal.core.embedded.chat`
for why); SQLite needs no lock: its one writer holds the whole database until the commit, so a
conversation's writes already go one at a time, in commit order.

On SQLite those statements run on the sqlite3 connection itself (`engine.fetch`): SQLAlchemy's
work around each execution (parameters, cursor and result set-up) cost more than SQLite's own.
The SQL and the type conversions are still SQLAlchemy's, compiled once; PostgreSQL runs the same
statements through SQLAlchemy.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from portal.core.contract import (
    Attachment,
    AttachmentDraft,
    ChatMessage,
    Conversation,
    NotFound,
)
from portal.core.contract.chat import ChatPost
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, fetch_numbered, first_row
from portal.core.embedded.rows import aware, from_row, insert_attachments, made, utcnow

PREVIEW_LENGTH = 120


def conversation_select() -> sa.Select:
    """Conversations with their assignee's name."""
    cv, ag = t.conversations, t.agents
    name = sa.func.coalesce(ag.c.name, sa.literal_column("''")).label("assignee_name")
    return sa.select(cv, name).select_from(cv.outerjoin(ag, ag.c.id == cv.c.assignee_agent_id))


_CV = t.conversations.c
# (Parameter names differ from column names: an UPDATE reserves those for its SET clause.)
_MINE = (_CV.id == sa.bindparam("cv_id")) & (_CV.tenant_id == sa.bindparam("cv_tenant"))
_ASSIGNEE = t.agents.alias("assignee")
# An UPDATE's RETURNING row with what `conversation_select` joins: the assignee's name. (SQLite
# names RETURNING columns unqualified; in the subquery, `id` is the agent's, as SQL scopes it.)
_RETURNING = (
    *t.conversations.c,
    sa.func.coalesce(
        sa.select(_ASSIGNEE.c.name)
        .where(_ASSIGNEE.c.id == _CV.assignee_agent_id)
        .scalar_subquery(),
        sa.literal_column("''"),
    ).label("assignee_name"),
)
GET_CONVERSATION = conversation_select().where(_MINE)
MESSAGE_BY_CLIENT = sa.select(t.chat_messages).where(
    (t.chat_messages.c.conversation_id == sa.bindparam("cv_id"))
    & (t.chat_messages.c.client_id == sa.bindparam("by_client"))
)
_MESSAGE_VALUES = (
    "conversation_id",
    "author_type",
    "author_id",
    "author_name",
    "body",
    "internal",
    "client_id",
    "created_at",
)
ROWS = 16  # at most, messages one INSERT stores and conversations one UPDATE moves


def _rows(types: dict[str, Any], count: int) -> sa.Subquery:
    """`count` rows of parameters (`NAME_N`) as a table: a UNION ALL of one-row SELECTs, which
    SQLite and PostgreSQL both read in INSERT ... SELECT and UPDATE ... FROM."""

    def value(name: str, n: int) -> Any:
        param = sa.bindparam(f"{name}_{n}", type_=types[name])
        # PostgreSQL takes an untyped parameter in a SELECT list for text; asyncpg's dialect
        # casts the others, not a boolean. (On SQLite a CAST to DATETIME would make a number.)
        typed = sa.cast(param, sa.Boolean) if isinstance(types[name], sa.Boolean) else param
        return typed.label(name)

    rows = [sa.select(*(value(name, n) for name in types)) for n in range(count)]
    return (sa.union_all(*rows) if count > 1 else rows[0]).subquery("v")


_NEW_TYPES = {"n": sa.Integer(), "cv_tenant": sa.Integer()} | {
    name: t.chat_messages.c[name].type for name in _MESSAGE_VALUES
}
_NEW = tuple(_NEW_TYPES)  # a new message's values, in this order (`fetch_numbered`)
_M = t.chat_messages.c


@cache
def insert_messages_statement(dialect: str, count: int) -> Any:
    """Insert `count` messages, each SELECTed with its conversation's row: no row (not this
    tenant's conversation), no message. A resend inserts nothing and returns nothing: one
    statement where a look-up first took two."""
    new = _rows(_NEW_TYPES, count)
    rows = (
        sa.select(_CV.id, *(new.c[name] for name in _MESSAGE_VALUES[1:]))
        .select_from(
            new.join(
                t.conversations,
                (_CV.id == new.c.conversation_id) & (_CV.tenant_id == new.c.cv_tenant),
            )
        )
        .where(sa.true())  # (without one, SQLite reads ON CONFLICT as the join's ON)
        .order_by(new.c.n)  # ids in the order given
    )
    insert = (sqlite if dialect == "sqlite" else postgresql).insert(t.chat_messages)
    return (
        insert.from_select(_MESSAGE_VALUES, rows)
        .on_conflict_do_nothing(index_elements=["conversation_id", "client_id"])
        .returning(_M.id, _M.conversation_id, _M.client_id)
    )


# PostgreSQL: the batch's conversations locked in id order, so that two processes' batches never
# wait for each other in a circle.
LOCK_CONVERSATIONS = (
    sa.select(_CV.id)
    .where(_CV.id.in_(sa.bindparam("cv_ids", expanding=True)))
    .order_by(_CV.id)
    .with_for_update()
)
# The conversations' side of a batch of new messages is one UPDATE per `ROWS` conversations:
# per conversation its last public message's id and preview (none: notes only), the time of its
# last message, and whether a visitor wrote (a visitor coming back to a closed conversation wants
# someone to answer).
_MARKER_TYPES: dict[str, Any] = {
    "cv_id": sa.Integer(),
    "message_id": sa.Integer(),
    "preview": t.conversations.c.last_message_preview.type,
    "now": t.conversations.c.updated_at.type,
    "reopen": sa.Boolean(),
}
_MARKERS = tuple(_MARKER_TYPES)


@cache
def after_messages_statement(count: int) -> sa.Update:
    """Move the markers of `count` conversations."""
    moves = _rows(_MARKER_TYPES, count)
    return (
        t.conversations.update()
        .where(_CV.id == moves.c.cv_id)
        .values(
            last_message_id=sa.func.coalesce(moves.c.message_id, _CV.last_message_id),
            last_message_preview=sa.func.coalesce(moves.c.preview, _CV.last_message_preview),
            updated_at=moves.c.now,
            status=sa.case(
                (moves.c.reopen & (_CV.status == "closed"), "waiting"), else_=_CV.status
            ),
        )
        .returning(*_RETURNING)
    )


def batch_statements(dialect: str) -> list[Any]:
    """The statements a batch of messages runs, one of each size: worth compiling at start."""
    sizes = range(1, ROWS + 1)
    return [insert_messages_statement(dialect, n) for n in sizes] + [
        after_messages_statement(n) for n in sizes
    ]


def _read_up_to(column: sa.Column[int]) -> sa.Update:
    """Move one reader's marker forward to `message_id`: never back, never past the newest
    message. One statement, whose RETURNING row is the conversation after it."""
    m = t.chat_messages.c
    newest = (
        sa.select(sa.func.coalesce(sa.func.max(m.id), 0))
        .where(m.conversation_id == _CV.id)
        .scalar_subquery()
    )
    asked = sa.bindparam("message_id", type_=sa.Integer)
    target = sa.case((asked < newest, asked), else_=newest)
    return (
        t.conversations.update()
        .where(_MINE)
        .values({column.name: sa.case((target > column, target), else_=column)})
        .returning(*_RETURNING)
    )


READ_UP_TO = {"visitor": _read_up_to(_CV.visitor_read_id), "agent": _read_up_to(_CV.agent_read_id)}


def conversation_from_row(row: Any) -> Conversation:
    return from_row(
        Conversation,
        row,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        visitor_email_verified=bool(row.visitor_email_verified),
    )


async def read_messages(
    conn: CoreConnection, query: sa.Select, params: dict[str, Any] | None = None
) -> list[ChatMessage]:
    """The messages `query` selects, each with its files."""
    rows = (await conn.execute(query, params)).all()
    files: dict[int, list[Attachment]] = defaultdict(list)
    if rows:
        a = t.attachments.c
        for row in await conn.execute(
            sa.select(t.attachments).where(a.message_id.in_([r.id for r in rows])).order_by(a.id)
        ):
            files[row.message_id].append(from_row(Attachment, row))
    return [
        from_row(
            ChatMessage, row, created_at=aware(row.created_at), attachments=tuple(files[row.id])
        )
        for row in rows
    ]


def _preview(body: str, attachments: tuple[AttachmentDraft, ...] | tuple[Attachment, ...]) -> str:
    text = " ".join(body.split())
    if not text and attachments:
        text = attachments[0].filename
    return text[:PREVIEW_LENGTH]


Stored = tuple[ChatMessage, Any] | NotFound


async def insert_messages(conn: CoreConnection, posts: list[ChatPost]) -> list[Stored]:
    """Store messages once per client id, in the order given; their conversations' markers are
    `move_markers`' work.

    For each post: the message and, for a resend, the conversation's row as it is (with
    `assignee_name`; the message is the one stored first), else None; or NotFound. On
    PostgreSQL the conversations' rows are locked first, until `conn`'s transaction ends (see
    `portal.core.embedded.chat` for what the locks are for).
    """
    dialect = conn.sync_connection.dialect.name  # type: ignore[union-attr]
    if dialect != "sqlite":
        cv_ids = sorted({post.conversation_id for post in posts})
        await conn.execute(LOCK_CONVERSATIONS, {"cv_ids": cv_ids})
    now = utcnow()  # (the batch's messages are stored in one moment; their ids keep the order)
    # Each message's values in `_NEW` order; `n` (any increasing number) keeps the ids in order.
    values = [
        (
            n,
            post.tenant_id,
            post.conversation_id,
            post.draft.author_type,
            post.draft.author_id,
            post.draft.author_name[:200],
            post.draft.body,
            post.draft.internal,
            post.draft.client_id,
            now,
        )
        for n, post in enumerate(posts)
    ]
    ids: dict[tuple[int, str], int] = {}
    for start in range(0, len(posts), ROWS):
        chunk = values[start : start + ROWS]
        statement = insert_messages_statement(dialect, len(chunk))
        for row in await fetch_numbered(conn, statement, _NEW, chunk):
            ids[(row.conversation_id, row.client_id)] = row.id
    stored: list[Stored] = []
    for post, (_, _, cv_id, kind, author_id, name, body, internal, client_id, _) in zip(
        posts, values, strict=True
    ):
        key = (cv_id, client_id)
        by_client = {"cv_id": cv_id, "by_client": client_id}
        message_id = ids.pop(key, None)  # (the first post with this id: the one stored)
        if message_id is None:  # a resend (or no such conversation): what was stored, as it is
            mine = {"cv_id": post.conversation_id, "cv_tenant": post.tenant_id}
            conversation = await first_row(conn, GET_CONVERSATION, mine)
            if conversation is None:
                stored.append(NotFound("no such conversation"))
                continue
            (message,) = await read_messages(conn, MESSAGE_BY_CLIENT, by_client)
            stored.append((message, conversation))
        elif post.draft.attachments:  # their ids are needed for links: read them back
            await insert_attachments(
                conn, post.tenant_id, post.draft.attachments, message_id=message_id
            )
            (message,) = await read_messages(conn, MESSAGE_BY_CLIENT, by_client)
            stored.append((message, None))
        else:
            fields = {
                "id": message_id,
                "conversation_id": cv_id,
                "author_type": kind,
                "body": body,
                "client_id": client_id,
                "created_at": now,
                "author_name": name,
                "author_id": author_id,
                "internal": internal,
                "attachments": (),
            }
            stored.append((made(ChatMessage, fields), None))
    return stored


async def move_markers(conn: CoreConnection, messages: list[ChatMessage]) -> dict[int, Any]:
    """Move the markers of the conversations of newly stored messages (in the order stored);
    conversation id -> its row after them, with `assignee_name`."""
    # Per conversation, in `_MARKERS` order: (its id, its last public message's id and preview,
    # the time of its last message, whether a visitor wrote).
    markers: dict[int, tuple[int, int | None, str | None, datetime, bool]] = {}
    for message in messages:
        cid = message.conversation_id
        _, last_id, preview, _, reopen = markers.get(cid) or (cid, None, None, None, False)
        if not message.internal:
            last_id = message.id
            preview = _preview(message.body, message.attachments)
            reopen = reopen or message.author_type == "visitor"
        markers[cid] = (cid, last_id, preview, message.created_at, reopen)
    rows: dict[int, Any] = {}
    moves = list(markers.values())
    for start in range(0, len(moves), ROWS):
        chunk = moves[start : start + ROWS]
        statement = after_messages_statement(len(chunk))
        for row in await fetch_numbered(conn, statement, _MARKERS, chunk):
            rows[row.id] = row
    return rows
