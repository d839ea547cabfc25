"""What every domain object of the embedded core is given: the engine and the event bus."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from portal.core.bus import EventBus
from portal.core.contract import NotFound
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import T


class EmbeddedDomain:
    """A domain of the embedded core (tenants, kb, customers, ...) on the shared database.

    All domains of one `EmbeddedCore` share its engine (one pool, one SQLite write lock) and its
    event bus, so subscribers hear every domain's events from `EmbeddedCore.events()`.
    """

    def __init__(self, engine: CoreEngine, bus: EventBus) -> None:
        self.engine = engine
        self._bus = bus

    async def _one(self, table: sa.Table, where: Any, convert: Callable[[Any], T], what: str) -> T:
        """The one row of `table` matching `where`, converted; NotFound(`what`) if none."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(table).where(where))).first()
        if row is None:
            raise NotFound(what)
        return convert(row)
