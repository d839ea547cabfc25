"""Small helpers shared by the embedded core's stores: time, row conversion, attachments."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from portal.core.contract import Attachment, AttachmentDraft, NotFound
from portal.core.embedded import schema as t

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


@cache
def _picks(cls: type, columns: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """Which positions of a row with these columns fill which fields of `cls`."""
    names = _field_names(cls)
    return tuple((i, name) for i, name in enumerate(columns) if name in names)


def from_row(cls: type[T], row: Any, **overrides: Any) -> T:
    """A contract dataclass from a row: the columns whose names are the dataclass's fields."""
    # Rows of one query share their column tuple, so the name matching is done once per query.
    dataclass_type: type = cls
    values = {name: row[i] for i, name in _picks(dataclass_type, row._fields)}
    values.update(overrides)
    return made(cls, values)


@cache
def _fillable(cls: type) -> bool:
    """Whether an instance may be made by filling its __dict__: nothing runs after __init__."""
    return not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")


def made(cls: type[T], values: dict[str, Any]) -> T:
    """`cls(**values)`, ten times faster when `values` names every field: a frozen dataclass's
    __init__ sets each field through `object.__setattr__` (2 µs for a conversation, which every
    chat message makes), where this fills the instance's __dict__ at once, as __init__ would."""
    kind: type = cls  # (a class, so hashable: the checks are cached per class)
    if values.keys() == _field_names(kind) and _fillable(kind):
        instance = object.__new__(cls)
        instance.__dict__.update(values)
        return instance
    return cls(**values)


def inserted_id(result: CursorResult[Any]) -> int:
    """The id of the row an INSERT made."""
    key = result.inserted_primary_key
    assert key is not None, "not the result of a single-row INSERT"
    return int(key[0])


async def insert_attachments(
    conn: Any,
    tenant_id: int,
    drafts: tuple[AttachmentDraft, ...],
    *,
    ticket_id: int | None = None,
    reply_id: int | None = None,
    message_id: int | None = None,
) -> None:
    """Record stored files as belonging to a ticket, a reply or a chat message."""
    if not drafts:
        return
    rows = _attachment_rows(tenant_id, drafts, ticket_id, reply_id, message_id, utcnow())
    await conn.execute(t.attachments.insert(), rows)


def _attachment_rows(
    tenant_id: int,
    drafts: tuple[AttachmentDraft, ...],
    ticket_id: int | None,
    reply_id: int | None,
    message_id: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    return [
        dict(
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            reply_id=reply_id,
            message_id=message_id,
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            storage_key=a.storage_key,
            created_at=now,
        )
        for a in drafts
    ]


async def stored_attachments(
    conn: Any,
    tenant_id: int,
    drafts: tuple[AttachmentDraft, ...],
    *,
    ticket_id: int,
    reply_id: int,
    now: datetime,
) -> tuple[Attachment, ...]:
    """Record a reply's stored files; the attachments as written, their ids from RETURNING."""
    if not drafts:
        return ()
    rows = _attachment_rows(tenant_id, drafts, ticket_id, reply_id, None, now)
    insert = t.attachments.insert().returning(t.attachments.c.id, sort_by_parameter_order=True)
    ids = [row[0] for row in await conn.execute(insert, rows)]
    return tuple(
        Attachment(
            id_, tenant_id, ticket_id, reply_id, a.filename, a.content_type, a.size, a.storage_key
        )
        for id_, a in zip(ids, drafts, strict=True)
    )


async def require_in_tenant(
    conn: Any, table: Any, tenant_id: int, row_id: int | None, what: str
) -> None:
    """NotFound(`what`) unless `row_id` is None or a row of `table` in this tenant."""
    if row_id is None:
        return
    c = table.c
    found = await conn.execute(
        sa.select(c.id).where(c.id == row_id).where(c.tenant_id == tenant_id)
    )
    if found.first() is None:
        raise NotFound(what)
