"""The embedded chat's rows: statements built once, reading messages and writing one.

Every chat message runs these statements; built once with bound parameters, they skip
SQLAlchemy's statement building and cache-key work on each call (about 4x faster on SQLite).
Storing a message takes three: lock the conversation, insert the message unless its client id
is stored already, and move the conversation's markers, whose RETURNING row is the conversation
after it, so nobody reads it back.

On SQLite those three run on the sqlite3 connection itself (`engine.first_row`): SQLAlchemy's work
around each execution (parameters, cursor and result set-up) cost more than SQLite's own, about
0.1 ms of a message's 0.25. The SQL and the type conversions are still SQLAlchemy's, compiled
once; PostgreSQL runs the same statements through SQLAlchemy.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from portal.core.contract import (
    Attachment,
    AttachmentDraft,
    ChatMessage,
    Conversation,
    MessageDraft,
    NotFound,
)
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, first_row
from portal.core.embedded.rows import aware, from_row, insert_attachments, utcnow

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
# (It sets a column no index holds: the lock costs no index update, on SQLite a third of it.)
LOCK_CONVERSATION = (
    t.conversations.update().where(_MINE).values(status=_CV.status).returning(_CV.status)
)
CONVERSATION_ROW = sa.select(t.conversations).where(_MINE)
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
# A resend inserts nothing and returns no id: one statement where a look-up first took two.
INSERT_MESSAGE = {
    name: dialect.insert(t.chat_messages)
    .values({key: sa.bindparam(key) for key in _MESSAGE_VALUES})
    .on_conflict_do_nothing(index_elements=["conversation_id", "client_id"])
    .returning(t.chat_messages.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
AFTER_PUBLIC_MESSAGE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(
        updated_at=sa.bindparam("now"),
        last_message_id=sa.bindparam("message_id"),
        last_message_preview=sa.bindparam("preview"),
        status=sa.bindparam("new_status"),
    )
    .returning(*_RETURNING)
)
AFTER_NOTE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(updated_at=sa.bindparam("now"))
    .returning(*_RETURNING)
)


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


async def store_message(
    conn: CoreConnection, tenant_id: int, conversation_id: int, draft: MessageDraft
) -> tuple[ChatMessage, Any]:
    """Store a message once per client id and move its conversation's markers.

    Returns the message (a resend's: the one stored first) and the conversation's row after it,
    with `assignee_name`. The conversation's row is locked first, until `conn`'s transaction
    ends (see `portal.core.embedded.chat` for what the lock is for).
    """
    mine = {"cv_id": conversation_id, "cv_tenant": tenant_id}
    locked = await first_row(conn, LOCK_CONVERSATION, mine)
    if locked is None:
        raise NotFound("no such conversation")
    status = locked.status
    now = utcnow()
    values: dict[str, Any] = dict(
        conversation_id=conversation_id,
        author_type=draft.author_type,
        author_id=draft.author_id,
        author_name=draft.author_name[:200],
        body=draft.body,
        internal=draft.internal,
        client_id=draft.client_id,
        created_at=now,
    )
    insert = INSERT_MESSAGE[conn.sync_connection.dialect.name]  # type: ignore[union-attr]
    inserted = await first_row(conn, insert, values)
    by_client = {"cv_id": conversation_id, "by_client": draft.client_id}
    if inserted is None:  # a resend: what was stored, and the conversation as it is
        (message,) = await read_messages(conn, MESSAGE_BY_CLIENT, by_client)
        return message, (await conn.execute(GET_CONVERSATION, mine)).one()
    message_id = inserted.id
    await insert_attachments(conn, tenant_id, draft.attachments, message_id=message_id)
    if draft.internal:
        conversation = await first_row(conn, AFTER_NOTE, {"cv_id": conversation_id, "now": now})
    else:
        # A visitor coming back to a closed conversation wants someone to answer.
        reopen = draft.author_type == "visitor" and status == "closed"
        conversation = await first_row(
            conn,
            AFTER_PUBLIC_MESSAGE,
            {
                "cv_id": conversation_id,
                "now": now,
                "message_id": message_id,
                "preview": _preview(draft.body, draft.attachments),
                "new_status": "waiting" if reopen else status,
            },
        )
    if draft.attachments:  # their ids are needed for links: read them back
        (message,) = await read_messages(conn, MESSAGE_BY_CLIENT, by_client)
        return message, conversation
    return ChatMessage(id=message_id, **values), conversation
