"""The server-side store of sign-in sessions, shared by the staff and the customer session.

The browser's cookie carries a random token (256 bits) inside the signed envelope of its
session (`portal.sessions.staff`, `portal.sessions.customer`); the core stores only the token's
SHA-256 (the session id) with the tenant, the kind ("agent" or "customer"), the agent's or
customer's id and the expiry. A request is signed in only while that row exists and is
unexpired. The row is read once and then kept (`portal.sessions.cache`) until the core says the
session ended, in any process, or its expiry passes. Signing out deletes the row and drops the
kept session here before answering; the core's event drops it in every other process, so a
copied cookie stops working at once. CSRF tokens are bound to the session id.

The signature is still checked first: a forged or foreign cookie costs no database read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from starlette.requests import HTTPConnection

from portal.core.contract import Session
from portal.request_helpers import tenant_of
from portal.services import services

AGENT = "agent"
CUSTOMER = "customer"


def session_id(token: str) -> str:
    """The id a session is stored under: the SHA-256 (hex) of the cookie's token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def start(
    connection: HTTPConnection, kind: str, subject_id: int, max_age: int
) -> tuple[str, str]:
    """Store a new session of this tenant for `subject_id`; returns (cookie token, session id)."""
    token = secrets.token_urlsafe(32)
    sid = session_id(token)
    expires_at = datetime.now(UTC) + timedelta(seconds=max_age)
    await services(connection).core.customers.create_session(
        tenant_of(connection).id, kind, subject_id, sid, expires_at
    )
    return token, sid


async def check(connection: HTTPConnection, token: str, kind: str, subject_id: int) -> str | None:
    """The session id when `token` names a live `kind` session of `subject_id`, else None."""
    sid = session_id(token)
    app = services(connection)
    found: Session | None = await app.sessions.session(app.core, tenant_of(connection).id, sid)
    if found is None or found.kind != kind or found.subject_id != subject_id:
        return None
    return sid


async def end(connection: HTTPConnection, sid: str) -> None:
    """End one session (signing out): the next request of its cookie, here too, is refused."""
    app, tenant_id = services(connection), tenant_of(connection).id
    await app.core.customers.end_session(tenant_id, sid)
    app.sessions.session_ended(tenant_id, sid)  # here at once; elsewhere when the event arrives


async def end_all(connection: HTTPConnection, kind: str, subject_id: int) -> int:
    """End every session of an agent or customer ("sign out everywhere"); returns how many."""
    app, tenant_id = services(connection), tenant_of(connection).id
    ended = await app.core.customers.end_sessions(tenant_id, kind, subject_id)
    app.sessions.sessions_ended(tenant_id, kind, subject_id)
    return ended
