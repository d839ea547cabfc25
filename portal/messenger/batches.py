"""Chat messages, stored in batches: every socket's messages of a moment in one transaction.

At hundreds of messages a second, a transaction each would spend more on beginning and
committing (on SQLite: writing the same pages of the log again for every message) than on the
messages. Here the messages of the next few milliseconds are gathered and stored together
(`post_chat_messages`), at most `BATCH` at a time so that storing never holds the event loop
for long; then each sender hears that its message is stored and each message is fanned out,
in the order stored. Nothing is acknowledged before its commit: if storing fails, every sender
of the batch gets the error and sends its message again later (the client id makes that safe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from portal.core.contract import ChatMessage, Conversation, HelpdeskCore, MessageDraft
from portal.core.contract.chat import ChatPost

log = logging.getLogger(__name__)

# How long messages gather before a batch is stored. At 500 messages a second, 12 ms gathers
# about 8, which cost half the CPU per message of batches of 2-3 (5 ms): the conversations' and
# indexes' pages are written once per batch, and the statements run once. A visitor waits the
# window at most, well within what a person notices in a chat.
GATHER_S = 0.012
BATCH = 16  # messages in one step of the loop (stored and fanned out in a few milliseconds)

Posted = tuple[ChatMessage, Conversation]
Announced = tuple[int, ChatMessage, Conversation]  # a stored message: (tenant id, it, after it)
FanOut = Callable[[list[Announced]], Awaitable[None]]  # a batch's messages, in the order stored


class PostFailed(Exception):
    """The batch a message was in could not be stored (logged once): nothing of it is stored,
    and the sender sends it again later."""


class MessageBatches:
    """Stores the messages of a moment together, then fans them out by `fan_out`."""

    def __init__(self, core: HelpdeskCore, fan_out: FanOut, gather_s: float = GATHER_S) -> None:
        self.core = core
        self.fan_out = fan_out
        self.gather_s = gather_s
        self._pending: list[tuple[ChatPost, asyncio.Future[Posted]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._gathering: asyncio.Future[None] | None = None  # done: store the batch now
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the app serves on

    async def post(self, tenant_id: int, conversation_id: int, draft: MessageDraft) -> Posted:
        """Store a message with the others of the moment and fan it out; the message as stored
        (a resend: the one stored first) and its conversation after it. Raises what refused
        it (NotFound, Conflict), or PostFailed."""
        if self._loop is None:  # (asking for it per message cost a getpid() system call each)
            self._loop = asyncio.get_running_loop()
        done: asyncio.Future[Posted] = self._loop.create_future()
        self._pending.append((ChatPost(tenant_id, conversation_id, draft), done))
        if self._writer is None or self._writer.done():
            self._writer = self._loop.create_task(self._write_soon(), name="chat-messages")
        elif len(self._pending) >= BATCH and self._gathering is not None:
            _end(self._gathering)  # a whole batch is here: waiting longer saves nothing
        return await done

    async def close(self) -> None:
        """Store what is gathering now, without waiting out the moment (the app is stopping)."""
        if self._gathering is not None and not self._gathering.done():
            self._gathering.set_result(None)
        if self._writer is not None and not self._writer.done():
            await self._writer

    async def _write_soon(self) -> None:
        batch: list[tuple[ChatPost, asyncio.Future[Posted]]] = []
        loop = self._loop or asyncio.get_running_loop()
        gathering = self._gathering = loop.create_future()
        timer = loop.call_later(self.gather_s, _end, gathering)
        try:
            await gathering
            while self._pending:
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                await self._write(batch)
                if self._pending:  # between batches, let the sockets have their turns
                    await asyncio.sleep(0)
        finally:  # cancelled (the app stopping): nobody waits for an answer forever
            timer.cancel()
            for _, done in batch + self._pending:
                _fail(done)
            self._pending = []

    async def _write(self, batch: list[tuple[ChatPost, asyncio.Future[Posted]]]) -> None:
        try:
            outcomes = await self.core.chat.post_chat_messages([post for post, _ in batch])
        except Exception:
            log.exception("storing %d chat messages failed", len(batch))
            for _, done in batch:
                _fail(done)
            return
        stored: list[tuple[int, Posted]] = []
        for (post, done), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                if not done.done():  # (a sender that left meanwhile: nothing to tell)
                    done.set_exception(outcome)
                continue
            # Before the fan-out, so the sender's socket runs first: its `ack` goes out ahead
            # of the `message` frame its own subscription gets.
            if not done.done():
                done.set_result(outcome)
            stored.append((post.tenant_id, outcome))
        # In the order stored (a socket drops a message older than one it has sent).
        stored.sort(key=lambda item: item[1][0].id)
        try:
            await self.fan_out([(tenant_id, *posted) for tenant_id, posted in stored])
        except Exception:  # the hub drops nothing it can encode; a bug, then
            log.exception("fanning out %d chat messages failed", len(stored))


def _end(gathering: asyncio.Future[None]) -> None:
    if not gathering.done():
        gathering.set_result(None)


def _fail(done: asyncio.Future[Posted]) -> None:
    if not done.done():
        done.set_exception(PostFailed())
