"""The two errors every domain of a core may raise; apps turn them into 404 and 409 answers."""

from __future__ import annotations


class NotFound(LookupError):
    """The object does not exist, or is not visible to the caller."""


class Conflict(ValueError):
    """The write clashes with existing data (e.g. a slug already taken)."""
