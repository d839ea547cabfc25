"""The embedded chat's rows: statements built once, reading messages and writing one.

Every chat message runs these statements; built once with bound parameters, they skip
SQLAlchemy's statement building and cache-key work on each call (about 4x faster on SQLite).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from portal.core.contract import (
    Attachment,
    AttachmentDraft,
    ChatMessage,
    Conversation,
    MessageDraft,
    NotFound,
)
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection
from portal.core.embedded.rows import aware, from_row, insert_attachments, inserted_id, utcnow

PREVIEW_LENGTH = 120


def conversation_select() -> sa.Select:
    """Conversations with their assignee's name."""
    cv, ag = t.conversations, t.agents
    return sa.select(cv, sa.func.coalesce(ag.c.name, "").label("assignee_name")).select_from(
        cv.outerjoin(ag, ag.c.id == cv.c.assignee_agent_id)
    )


_CV = t.conversations.c
# (Parameter names differ from column names: an UPDATE reserves those for its SET clause.)
_MINE = (_CV.id == sa.bindparam("cv_id")) & (_CV.tenant_id == sa.bindparam("cv_tenant"))
GET_CONVERSATION = conversation_select().where(_MINE)
LOCK_CONVERSATION = t.conversations.update().where(_MINE).values(updated_at=_CV.updated_at)
CONVERSATION_ROW = sa.select(t.conversations).where(_MINE)
MESSAGE_BY_CLIENT = sa.select(t.chat_messages).where(
    (t.chat_messages.c.conversation_id == sa.bindparam("cv_id"))
    & (t.chat_messages.c.client_id == sa.bindparam("by_client"))
)
INSERT_MESSAGE = t.chat_messages.insert()
AFTER_PUBLIC_MESSAGE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(
        updated_at=sa.bindparam("now"),
        last_message_id=sa.bindparam("message_id"),
        last_message_preview=sa.bindparam("preview"),
        status=sa.bindparam("new_status"),
    )
)
AFTER_NOTE = (
    t.conversations.update()
    .where(_CV.id == sa.bindparam("cv_id"))
    .values(updated_at=sa.bindparam("now"))
)


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


async def lock_conversation(conn: CoreConnection, tenant_id: int, conversation_id: int) -> Any:
    """The conversation's row, locked until `conn`'s transaction ends.

    (An UPDATE that changes nothing: see `portal.core.embedded.chat` for what the lock is for.)
    """
    params = {"cv_id": conversation_id, "cv_tenant": tenant_id}
    result = await conn.execute(LOCK_CONVERSATION, params)
    if result.rowcount == 0:
        raise NotFound("no such conversation")
    return (await conn.execute(CONVERSATION_ROW, params)).one()


def _preview(body: str, attachments: tuple[AttachmentDraft, ...] | tuple[Attachment, ...]) -> str:
    text = " ".join(body.split())
    if not text and attachments:
        text = attachments[0].filename
    return text[:PREVIEW_LENGTH]


async def insert_message(
    conn: CoreConnection, tenant_id: int, conversation: Any, draft: MessageDraft
) -> ChatMessage:
    """Store a new message and move its conversation's markers (under the conversation's lock)."""
    now = utcnow()
    values = dict(
        conversation_id=conversation.id,
        author_type=draft.author_type,
        author_id=draft.author_id,
        author_name=draft.author_name[:200],
        body=draft.body,
        internal=draft.internal,
        client_id=draft.client_id,
        created_at=now,
    )
    result = await conn.execute(INSERT_MESSAGE, values)
    message_id = inserted_id(result)
    await insert_attachments(conn, tenant_id, draft.attachments, message_id=message_id)
    if draft.internal:
        await conn.execute(AFTER_NOTE, {"cv_id": conversation.id, "now": now})
    else:
        # A visitor coming back to a closed conversation wants someone to answer.
        reopen = draft.author_type == "visitor" and conversation.status == "closed"
        await conn.execute(
            AFTER_PUBLIC_MESSAGE,
            {
                "cv_id": conversation.id,
                "now": now,
                "message_id": message_id,
                "preview": _preview(draft.body, draft.attachments),
                "new_status": "waiting" if reopen else conversation.status,
            },
        )
    if draft.attachments:  # their ids are needed for links: read them back
        (message,) = await read_messages(
            conn,
            MESSAGE_BY_CLIENT,
            {"cv_id": conversation.id, "by_client": draft.client_id},
        )
        return message
    return ChatMessage(id=message_id, **values)
