"""The staff session: agents and admins, in the agent console, the admin pages and the chat.

`portal_agent` holds `signer.dumps("agent-session", {"agent_id", "tenant_id", "sid"})`, where
`sid` is a random token (256 bits) made at every sign-in. The core keeps a session row named by
the token's SHA-256 (`portal.sessions.store`), never the token itself. A request is signed in
only when the signature is good (checked first, so a forged cookie costs no database read), the
cookie names this request's tenant, and the row exists, is unexpired and belongs to the same
agent (read once, then kept until the core says the session ended: `portal.sessions.cache`).
Signing out deletes the row and the core tells every process, so a copy of the cookie stops
working at once everywhere; "sign out everywhere" deletes (and tells of) every row of the agent.
The cookie is HttpOnly, SameSite=Lax, Secure in production, host-only (no Domain attribute) and
lasts 12 hours, as does the row. The agent is read from the core on every request, so a
deleted agent or a changed role takes effect at once.

The sign-in page, the role checks and CSRF of the staff pages are `portal.admin.auth`'s.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from portal.core.contract import Agent, NotFound
from portal.request_helpers import tenant_of
from portal.security import signed_session
from portal.services import services
from portal.sessions import store

SESSION_COOKIE = "portal_agent"
SESSION_MAX_AGE = 12 * 3600


def session_data(connection: HTTPConnection) -> dict[str, Any] | None:
    """The signed session payload if it is valid, unexpired and for this request's tenant."""
    return signed_session(
        connection,
        SESSION_COOKIE,
        "agent-session",
        SESSION_MAX_AGE,
        tenant_key="tenant_id",
        id_key="agent_id",
        sid_key="sid",
    )


async def current_session(connection: HTTPConnection) -> tuple[Agent, str] | None:
    """(agent, session id) when the cookie names a live session of this tenant, else None."""
    data = session_data(connection)
    if data is None:
        return None
    sid = await store.check(connection, data["sid"], store.AGENT, data["agent_id"])
    if sid is None:
        return None
    tenant_id = tenant_of(connection).id
    try:
        agent = await services(connection).core.tenants.get_agent(tenant_id, data["agent_id"])
    except NotFound:
        return None
    if agent.tenant_id != tenant_id:
        return None
    return agent, sid


async def current_agent(connection: HTTPConnection) -> Agent | None:
    """The signed-in agent of this request's (or websocket's) tenant, or None."""
    session = await current_session(connection)
    return session[0] if session else None


async def sign_in(response: Response, request: Request, agent: Agent) -> str:
    """Start a session for `agent` and set its cookie on `response`; returns the session id."""
    token, sid = await store.start(request, store.AGENT, agent.id, SESSION_MAX_AGE)
    signer = services(request).signer
    cookie = signer.dumps(
        "agent-session", {"agent_id": agent.id, "tenant_id": agent.tenant_id, "sid": token}
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE,
        path="/",
        secure=bool(services(request).settings.production),
        httponly=True,
        samesite="lax",
    )
    return sid


def cookie_session_id(request: Request) -> str | None:
    """The session id the (validly signed) cookie names, whether or not it is still live."""
    data = session_data(request)
    return store.session_id(data["sid"]) if data else None


def sign_out(response: Response) -> None:
    """Drop the cookie; the caller ends the session itself (`store.end` or `store.end_all`)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
