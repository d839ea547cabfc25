"""Read receipts, written in batches: every socket's `read` frames of a moment in one transaction.

Each side's client says "read up to message N" soon after a message shows, so with many chats
there are about as many read receipts as messages. Written one by one they would cost a
transaction each; here the receipts of the next few milliseconds are gathered, the same
conversation's collapse into the highest, and each batch is one transaction of at most `BATCH`
receipts, so writing them never holds the event loop for more than a few milliseconds. After a
batch is stored, each conversation's sockets hear its stored marker (`read` frames), as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from itertools import islice

from portal.core.contract import HelpdeskCore
from portal.hub import Hub

log = logging.getLogger(__name__)

GATHER_S = 0.02  # how long receipts gather before a batch is written
BATCH = 100  # receipts in one transaction: a few milliseconds of SQLite at most
RETRY_S = 1.0  # after a failed batch (the database away), before trying its receipts again
CLOSE_WAIT_S = 1.0  # how long a stopping app waits for the last receipts to be stored

Key = tuple[int, int, str]  # (tenant, conversation, reader)


class ReadReceipts:
    """Stores read markers in batches and tells the conversations' sockets."""

    def __init__(
        self,
        core: HelpdeskCore,
        hub: Hub,
        channel_of: Callable[[int, int], str],
        gather_s: float = GATHER_S,
    ) -> None:
        self.core = core
        self.hub = hub
        self.channel_of = channel_of
        self.gather_s = gather_s
        self._pending: dict[Key, int] = {}
        self._writer: asyncio.Task[None] | None = None

    def mark(self, tenant_id: int, conversation_id: int, reader: str, message_id: int) -> None:
        """Note that `reader` has read `conversation_id` up to `message_id`; stored soon."""
        key = (tenant_id, conversation_id, reader)
        self._pending[key] = max(message_id, self._pending.get(key, 0))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon(), name="read-receipts")

    async def close(self) -> None:
        """Give the pending receipts a moment to be stored (the app is stopping)."""
        if self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._writer, CLOSE_WAIT_S)

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.gather_s)
        while self._pending:
            if not await self._write_batch():
                await asyncio.sleep(RETRY_S)
            await asyncio.sleep(0)  # between batches, let the sockets have their turns

    async def _write_batch(self) -> bool:
        """Store up to BATCH pending receipts and announce them; False if storing failed (they
        are pending again then)."""
        taken = dict(islice(self._pending.items(), BATCH))
        for key in taken:
            del self._pending[key]
        groups: dict[tuple[int, str], dict[int, int]] = {}
        for (tenant_id, conversation_id, reader), message_id in taken.items():
            groups.setdefault((tenant_id, reader), {})[conversation_id] = message_id
        stored: list[tuple[int, int, str, int]] = []
        try:
            for (tenant_id, reader), up_to in groups.items():
                markers = await self.core.chat.mark_conversations_read(
                    tenant_id, reader=reader, up_to=up_to
                )
                stored += [(tenant_id, cid, reader, marker) for cid, marker in markers.items()]
        except Exception:
            log.exception("storing read receipts failed; trying again")
            for key, message_id in taken.items():
                self._pending[key] = max(message_id, self._pending.get(key, 0))
            return False
        for tenant_id, conversation_id, reader, marker in stored:
            await self.hub.publish(
                self.channel_of(tenant_id, conversation_id),
                {
                    "type": "read",
                    "conversation_id": conversation_id,
                    "reader": reader,
                    "id": marker,
                },
            )
        return True
