"""Small helpers shared by the embedded core's stores: time and row conversion."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

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
    values = {name: row[i] for i, name in _picks(cls, row._fields)}
    values.update(overrides)
    return cls(**values)
