"""What a signed-in request needs, kept between requests: its session, its customer, its token.

Sessions (staff and customer alike) are kept by id once read, while unexpired. Only the core
ends them (signing out, "sign out everywhere") and it announces every end to every process
(`session.ended`, `sessions.ended`, through `portal.events`), so a kept session is dropped as
soon as the event arrives; the process that ended it drops it before answering. After `TTL`
seconds a session is read again even if no event came (a hub outage loses events; the feed's
`EVENTS_RESUMED` then drops everything). A read that overlaps an end is used for its own request
only, never kept: it may be the row from before the end.

A session cookie's verified signature is remembered too (`verified`), for `TTL` seconds.

The customer behind a session changes rarely and only through the core, which announces every
change (`customer.changed`) the same way, so it is kept here and dropped when told, and after
`TTL` seconds even if never told. The CSRF token of a session is kept too: it is a signature of
the session id, made per page until now.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from portal.core.contract import EVENTS_RESUMED, Customer, Event, HelpdeskCore, Session
from portal.csrf import TOKEN_MAX_AGE, csrf_token
from portal.security import Signer

TTL = 60.0  # the longest a session or customer is kept without hearing of it
# A token is reused for this long, so a page always carries one valid for 11 more hours.
TOKEN_REUSE = TOKEN_MAX_AGE - 11 * 3600
MAX_ENTRIES = 10_000
# What `SessionCache.follow` acts on (and EVENTS_RESUMED, which every subscriber hears).
SESSION_EVENTS = frozenset({"customer.changed", "session.ended", "sessions.ended"})


class SessionCache:
    """Sessions by (tenant id, session id), customers by (tenant id, customer id) and CSRF
    tokens by session id, for one app."""

    def __init__(self, ttl: float = TTL, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # (kept until, on time.monotonic; expires, on time.time; the session)
        self._sessions: dict[tuple[int, str], tuple[float, float, Session]] = {}
        self._ends = 0  # ends heard so far: a read that saw this number change is not kept
        self._customers: dict[tuple[int, int], tuple[float, Customer]] = {}
        self._changes = 0  # customer changes heard so far, as `_ends` for sessions
        self._tokens: dict[str, tuple[float, str]] = {}
        self._verified: dict[tuple[str, str], tuple[float, Any]] = {}

    async def session(self, core: HelpdeskCore, tenant_id: int, session_id: str) -> Session | None:
        """The live session of this tenant with this id, from the core when not kept."""
        key = (tenant_id, session_id)
        kept = self._sessions.get(key)
        if kept is not None and kept[0] > time.monotonic() and kept[1] > time.time():
            return kept[2]
        ends = self._ends
        found = await core.customers.get_session(tenant_id, session_id)
        if found is None:
            self._sessions.pop(key, None)
            return None
        if ends == self._ends:
            if len(self._sessions) >= self.max_entries:
                self._sessions.clear()
            until = time.monotonic() + self.ttl
            self._sessions[key] = (until, found.expires_at.timestamp(), found)
        return found

    def session_ended(self, tenant_id: int, session_id: str) -> None:
        """Drop one session: it was ended (signed out)."""
        self._ends += 1
        self._sessions.pop((tenant_id, session_id), None)
        self._tokens.pop(session_id, None)

    def sessions_ended(self, tenant_id: int, kind: str, subject_id: int) -> None:
        """Drop every session of an agent or a customer ("sign out everywhere")."""
        self._ends += 1
        for key, (_until, _expires, session) in list(self._sessions.items()):
            if (session.tenant_id, session.kind, session.subject_id) == (
                tenant_id,
                kind,
                subject_id,
            ):
                del self._sessions[key]
                self._tokens.pop(session.id, None)

    def verified(self, signer: Signer, purpose: str, token: str, max_age: int) -> Any | None:
        """`signer.loads(purpose, token, max_age)`, a valid token's value remembered `ttl`
        seconds: the same cookie comes with every page of a session, and checking its signature
        costs more than the rest of a kept page's answer. (Its age is checked again after `ttl`;
        the session's row, whose expiry is checked on every request, ends no later than it.)
        The value is shared: callers only read it."""
        key = (purpose, token)
        now = time.monotonic()
        kept = self._verified.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        value = signer.loads(purpose, token, max_age=max_age)
        if value is not None:
            if len(self._verified) >= self.max_entries:
                self._verified.clear()
            self._verified[key] = (now + self.ttl, value)
        return value

    async def customer(self, core: HelpdeskCore, tenant_id: int, customer_id: int) -> Customer:
        """The customer, from the core when not kept (NotFound when there is none)."""
        key = (tenant_id, customer_id)
        now = time.monotonic()
        kept = self._customers.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        changes = self._changes
        customer = await core.customers.get_customer(tenant_id, customer_id)
        if changes == self._changes:  # else it may be the customer from before the change
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
        self._changes += 1
        self._customers.pop((tenant_id, customer_id), None)

    def forget_all(self) -> None:
        """Drop every session and customer: ends and changes may have gone unheard."""
        self._ends += 1
        self._changes += 1
        self._sessions.clear()
        self._customers.clear()

    async def follow(self, events: AsyncIterator[Event]) -> None:
        """Drop what the core says changed or ended, in any process, until cancelled."""
        async for event in events:
            if event.type == "customer.changed":
                self.forget(event.tenant_id, event.data["customer_id"])
            elif event.type == "session.ended":
                self.session_ended(event.tenant_id, event.data["session_id"])
            elif event.type == "sessions.ended":
                data = event.data
                self.sessions_ended(event.tenant_id, data["kind"], data["subject_id"])
            elif event.type == EVENTS_RESUMED:  # changes may have gone unheard
                self.forget_all()
