"""The last answer to each of a customer's reads, given back while the remote core does not answer.

An edge on a remote core keeps, per process, what the core last answered to the reads a
customer's pages need: the customer behind a session, their tickets, a ticket's replies and
rating (`domains.py` asks through `LastAnswers.read`), and a visitor's conversations and
messages (`LastAnswerChat`). During an outage those pages load from them instead of failing,
and the writes go to the outbox. A reply the core took joins its ticket's kept lists
(`replied`), so a page read in an outage shows what the customer saw confirmed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from portal.core.contract import (
    ChatDomain,
    ChatMessage,
    Conversation,
    Customer,
    CustomersDomain,
    Reply,
)
from portal.core.remote.client import CoreUnavailable
from portal.edge.outbox.rows import Row


class Passthrough:
    """A domain object that answers what it does not define with `inner`'s own."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LastAnswers:
    """The last answer to each read, given back while the core does not answer."""

    MAX = 10_000

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    async def read(self, key: tuple[Any, ...], call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            answer = await call()
        except CoreUnavailable:
            if key in self._kept:
                return self._kept[key]
            raise
        self._kept[key] = answer
        self._kept.move_to_end(key)
        if len(self._kept) > self.MAX:
            self._kept.popitem(last=False)
        return answer

    async def replied(self, row: Row, value: Any) -> None:
        """A reply the core took joins its ticket's kept reply lists: a page read while the
        core is away must not lose what the customer saw confirmed."""
        if row.kind != "reply" or not isinstance(value, Reply):
            return
        for internal in (False, True):
            key = ("replies", row.tenant_id, value.ticket_id, internal)
            kept = self._kept.get(key)
            if kept is None or (value.internal and not internal):
                continue
            if all(reply.id != value.id for reply in kept):
                self._kept[key] = [*kept, value]


class LastAnswerCustomers(Passthrough):
    """The customers domain, its `get_customer` kept for outages (a signed-in customer's
    pages load the customer on each request)."""

    def __init__(self, inner: CustomersDomain, last: LastAnswers) -> None:
        super().__init__(inner)
        self._last = last

    async def get_customer(self, tenant_id: int, customer_id: int) -> Customer:
        customer: Customer = await self._last.read(
            ("customer", tenant_id, customer_id),
            lambda: self._inner.get_customer(tenant_id, customer_id),
        )
        return customer


class LastAnswerChat(Passthrough):
    """The chat domain, the reads of a visitor's socket kept for outages: a page the visitor
    opens (a new socket) while the core is away still finds their conversations, and what they
    send goes through the outbox."""

    def __init__(self, inner: ChatDomain, last: LastAnswers) -> None:
        super().__init__(inner)
        self._last = last

    async def get_conversation(self, tenant_id: int, conversation_id: int) -> Conversation:
        found: Conversation = await self._last.read(
            ("conversation", tenant_id, conversation_id),
            lambda: self._inner.get_conversation(tenant_id, conversation_id),
        )
        return found

    async def list_conversations(self, tenant_id: int, **options: Any) -> list[Conversation]:
        found: list[Conversation] = await self._last.read(
            ("conversations", tenant_id, *sorted(options.items())),
            lambda: self._inner.list_conversations(tenant_id, **options),
        )
        return found

    async def chat_messages(
        self, tenant_id: int, conversation_id: int, **options: Any
    ) -> list[ChatMessage]:
        found: list[ChatMessage] = await self._last.read(
            ("messages", tenant_id, conversation_id, *sorted(options.items())),
            lambda: self._inner.chat_messages(tenant_id, conversation_id, **options),
        )
        return found
