"""The embedded core: the contract's domains on SQLAlchemy (SQLite default, PostgreSQL).

`EmbeddedCore` builds one object per domain on a shared engine and event bus and owns what
belongs to the whole: migrations at start, the engine's pool at close, the events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import sqlalchemy as sa

from portal.core.bus import EventBus
from portal.core.contract import Capabilities, Event, HelpdeskCore
from portal.core.embedded.chat import EmbeddedChat
from portal.core.embedded.chat_rows import batch_statements
from portal.core.embedded.customers import EmbeddedCustomers
from portal.core.embedded.engine import InlineEngine, make_engine
from portal.core.embedded.forms import EmbeddedForms
from portal.core.embedded.kb import EmbeddedKnowledgeBase
from portal.core.embedded.migrate import upgrade
from portal.core.embedded.tenants import EmbeddedTenants
from portal.core.embedded.tickets import EmbeddedTickets


class EmbeddedCore(HelpdeskCore):
    """The default core, in this process, on the database at `database_url`.

    It has every optional feature; `capabilities` may claim fewer, which is how tests show
    that the apps hide what a backend lacks.
    """

    def __init__(
        self,
        database_url: str,
        *,
        migrate: bool = True,
        capabilities: Capabilities | None = None,
    ) -> None:
        self.database_url = database_url
        self.engine = make_engine(database_url)
        self._migrate = migrate
        self._bus = EventBus()
        engine, bus = self.engine, self._bus
        customers = EmbeddedCustomers(engine, bus)
        tickets = EmbeddedTickets(engine, bus, customers)
        super().__init__(
            tenants=EmbeddedTenants(engine, bus),
            kb=EmbeddedKnowledgeBase(engine, bus),
            customers=customers,
            tickets=tickets,
            forms=EmbeddedForms(engine, bus),
            chat=EmbeddedChat(engine, bus, customers, tickets),
            capabilities=capabilities,
        )

    async def start(self) -> None:
        if self._migrate:
            await upgrade(self.engine)
        if isinstance(self.engine, InlineEngine):
            self.engine.prepare(batch_statements("sqlite"))

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """A `SELECT 1` on the engine: raises when the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def events(self) -> AsyncIterator[Event]:
        return self._bus.subscribe()

    def publish(self, event: Event) -> None:
        """Tell this core's subscribers of `event` (the core API adds what only remote edges
        need to hear: `portal.core.api.announcements`)."""
        self._bus.publish(event)
