"""The edge's durable outbox for writes to a remote core (see `outbox.py` for how it works).

`EdgeOutbox.start(settings, remote)` is what the app's lifespan calls when its core is remote:
the edge database (PORTAL_EDGE_DATABASE_URL), the outbox over it, and `core`, the HelpdeskCore
the app then uses (the remote core with its writes through the outbox). The embedded core has
no outbox: its write path stays as it is.
"""

from __future__ import annotations

from portal.core.contract import HelpdeskCore
from portal.core.remote.core import RemoteCore
from portal.edge.db import EdgeDatabase
from portal.edge.outbox.chat import ChatOutbox
from portal.edge.outbox.domains import PendingReply, PendingTicket, outbox_core, pending_reference
from portal.edge.outbox.outbox import Outbox, Queued
from portal.edge.outbox.store import OutboxStore
from portal.health import OutboxStats
from portal.settings import Settings


class EdgeOutbox:
    """One app's outbox, its database and the core wrapped around it."""

    def __init__(
        self, db: EdgeDatabase, outbox: Outbox, core: HelpdeskCore, chat: ChatOutbox
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.core = core
        self.chat = chat  # visitors' messages; `chat.attach(messenger)` once there is one

    @classmethod
    async def start(cls, settings: Settings, remote: RemoteCore) -> EdgeOutbox:
        db = EdgeDatabase(settings.resolved_edge_database_url)
        await db.start()
        outbox = Outbox(
            OutboxStore(db.engine),
            remote.client,
            send_wait_s=float(settings.outbox_send_wait_s),
            retry_max_s=float(settings.outbox_retry_max_s),
            attempt_timeout_s=settings.core_timeout,
        )
        return cls(db, outbox, outbox_core(remote, outbox), ChatOutbox(outbox, remote.client))

    async def probe(self) -> OutboxStats:
        """Depth and oldest age, for `/readyz` and `/metrics`."""
        depth, age = await self.outbox.stats()
        return OutboxStats(depth=depth, oldest_age_s=None if age is None else round(age, 3))

    async def close(self) -> None:
        """After the drainer stopped: its leases go back, so another edge sends them now."""
        await self.outbox.store.release(self.outbox.owner)
        await self.db.close()


__all__ = [
    "ChatOutbox",
    "EdgeOutbox",
    "Outbox",
    "PendingReply",
    "PendingTicket",
    "Queued",
    "outbox_core",
    "pending_reference",
]
