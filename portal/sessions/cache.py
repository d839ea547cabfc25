"""What a signed-in request needs besides its session row, kept between requests.

The session row is read on every request (`portal.sessions.store`): signing out must end a
session at once in every process, and only the row can say so. The customer behind the session
changes rarely and only through the core, which announces every change (`customer.changed`) to
every process (`portal.events`), so it is kept here and dropped when told; a change takes effect
as soon as the event arrives, and after `TTL` seconds even if it never does. The CSRF token of a
session is kept too: it is a signature of the session id, made per page until now.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from portal.core.contract import EVENTS_RESUMED, Customer, Event, HelpdeskCore
from portal.csrf import TOKEN_MAX_AGE, csrf_token
from portal.security import Signer

TTL = 60.0  # the longest a customer is kept without hearing of it
# A token is reused for this long, so a page always carries one valid for 11 more hours.
TOKEN_REUSE = TOKEN_MAX_AGE - 11 * 3600
MAX_ENTRIES = 10_000


class SessionCache:
    """Customers by (tenant id, customer id) and CSRF tokens by session id, for one app."""

    def __init__(self, ttl: float = TTL, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._customers: dict[tuple[int, int], tuple[float, Customer]] = {}
        self._tokens: dict[str, tuple[float, str]] = {}

    async def customer(self, core: HelpdeskCore, tenant_id: int, customer_id: int) -> Customer:
        """The customer, from the core when not kept (NotFound when there is none)."""
        key = (tenant_id, customer_id)
        now = time.monotonic()
        kept = self._customers.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        customer = await core.customers.get_customer(tenant_id, customer_id)
        if len(self._customers) >= self.max_entries:
            self._customers.clear()  # many sessions at once must not grow memory without bound
        self._customers[key] = (now + self.ttl, customer)
        return customer

    def csrf_token(self, signer: Signer, session_id: str) -> str:
        """The session's CSRF token, made again once it is `TOKEN_REUSE` seconds old."""
        now = time.monotonic()
        kept = self._tokens.get(session_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        token = csrf_token(signer, session_id)
        if len(self._tokens) >= self.max_entries:
            self._tokens.clear()
        self._tokens[session_id] = (now + TOKEN_REUSE, token)
        return token

    def forget(self, tenant_id: int, customer_id: int) -> None:
        self._customers.pop((tenant_id, customer_id), None)

    def forget_all(self) -> None:
        self._customers.clear()

    async def follow(self, events: AsyncIterator[Event]) -> None:
        """Drop customers the core says changed, in any process, until cancelled."""
        async for event in events:
            if event.type == "customer.changed":
                self.forget(event.tenant_id, event.data["customer_id"])
            elif event.type == EVENTS_RESUMED:  # changes may have gone unheard
                self.forget_all()
