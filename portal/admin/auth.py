"""The agent session: a server-side session, sign in/out, role checks, CSRF and login limits.

Session
    `portal_agent` holds `signer.dumps("agent-session", {"agent_id", "tenant_id", "sid"})`, where
    `sid` is a random token (256 bits) made at every sign-in. The core keeps a session row named
    by the token's SHA-256 (`portal.sessions`), never the token itself. A request is signed in
    only when the signature is good (checked first, so a forged cookie costs no database read),
    the cookie names this request's tenant, and the row exists, is unexpired and belongs to the
    same agent: one primary-key read. Signing out deletes the row, so a copy of the cookie stops
    working at once in every process; "sign out everywhere" deletes every row of the agent. The
    cookie is HttpOnly, SameSite=Lax, Secure in production, host-only (no Domain attribute) and
    lasts 12 hours, as does the row. The agent is read from the core on every request too, so a
    deleted agent or a changed role takes effect at once.

CSRF
    Every POST form carries `csrf_token` = `csrf_token(signer, session id)` (the stored id, not
    the cookie's token, so a page's HTML never holds what the cookie holds); `require_agent`
    checks it (with `csrf_ok`) before the endpoint runs, and a missing or forged token is a 403
    page that asks to reload the page. In addition, a POST whose `Origin` header names another
    host is refused (browsers send it on cross-site form posts; it is only checked when present).

Login CSRF
    The login form has no session yet, so it uses a pre-session token: a random nonce in the
    HttpOnly cookie `portal_login` (path /admin) and `csrf_token(signer, "login:" + nonce)` in the
    form. We chose this over checking only Origin/Referer because Referer is often stripped
    (Referrer-Policy, privacy extensions, proxies) and Origin is missing on some clients, which
    forces either letting such requests through (no protection) or refusing real users; the
    token works the same for every client and every other admin form. The Origin check above is
    applied to the login POST too, which also covers a nonce cookie planted from elsewhere.

Login limits (`LoginGuard`, in memory, per app instance and process)
    Checked in this order, all before any password hash, each refusal a 429 with Retry-After:
    - per client address: 20 attempts in 15 minutes, whatever the emails and tenants (password
      spraying); an attempt that signs in (or was never checked) is taken back, so only
      failures use the allowance up;
    - per account and address: 5 failures free, then each attempt must wait 1 s after the last
      failure, doubling with every further failure (2 s, 4 s, ...) up to 5 minutes; forgotten
      after 15 quiet minutes. Failures from one address never slow another address, so nobody
      can lock an admin out by guessing wrong on purpose;
    - per account, from all addresses: after 100 failures in 15 minutes (a distributed attack)
      one attempt a second gets through, a short delay rather than a lock.
    An attempt counts as failed when it is let through, so parallel guesses cannot slip past;
    a correct password clears the account's backoff for that address. Unknown emails are
    counted the same way and cost one scrypt like a wrong password, so nothing tells them apart.
    Password checks run through `portal.security.password_hashing`: two scrypt at a time in
    their own threads, eight waiting; beyond that the answer is 503 with Retry-After at once.
"""

from __future__ import annotations

import functools
import secrets
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from portal import sessions
from portal.core.contract import Agent, NotFound
from portal.ratelimit import RateLimiter
from portal.security import Signer, csrf_ok, csrf_token, signed_session
from portal.templating import page_language, render, use_language

SESSION_COOKIE = "portal_agent"
LOGIN_COOKIE = "portal_login"
SESSION_MAX_AGE = 12 * 3600
LOGIN_PATH = "/admin/login"
DEFAULT_NEXT = "/admin/"
NEXT_AREAS = ("/admin", "/agent")  # where `next` may send a signed-in agent
ROLES = {"agent": 1, "admin": 2}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Endpoint = Callable[[Request], Awaitable[Response]]


# ------------------------------------------------------------------ session cookie
def _signer(request: Request) -> Signer:
    return request.state.signer


def _secure(request: Request) -> bool:
    return bool(request.state.settings.production)


def session_data(request: Request) -> dict[str, Any] | None:
    """The signed session payload if it is valid, unexpired and for this request's tenant."""
    return signed_session(
        request,
        SESSION_COOKIE,
        "agent-session",
        SESSION_MAX_AGE,
        tenant_key="tenant_id",
        id_key="agent_id",
        sid_key="sid",
    )


async def _session(request: Request) -> tuple[Agent, str] | None:
    """(agent, session id) when the cookie names a live session of this tenant, else None."""
    data = session_data(request)
    if data is None:
        return None
    sid = await sessions.check(request, data["sid"], sessions.AGENT, data["agent_id"])
    if sid is None:
        return None
    try:
        agent = await request.state.core.get_agent(request.state.tenant.id, data["agent_id"])
    except NotFound:
        return None
    if agent.tenant_id != request.state.tenant.id:
        return None
    return agent, sid


async def current_agent(request: Request) -> Agent | None:
    """The signed-in agent of this request's tenant, or None."""
    session = await _session(request)
    return session[0] if session else None


async def sign_in(response: Response, request: Request, agent: Agent) -> str:
    """Start a session for `agent` and set its cookie on `response`; returns the session id."""
    token, sid = await sessions.start(request, sessions.AGENT, agent.id, SESSION_MAX_AGE)
    cookie = _signer(request).dumps(
        "agent-session", {"agent_id": agent.id, "tenant_id": agent.tenant_id, "sid": token}
    )
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_MAX_AGE,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return sid


def cookie_session_id(request: Request) -> str | None:
    """The session id the (validly signed) cookie names, whether or not it is still live."""
    data = session_data(request)
    return sessions.session_id(data["sid"]) if data else None


def sign_out(response: Response) -> None:
    """Drop the cookie; the caller ends the session itself (`sessions.end` or `end_all`)."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


# ------------------------------------------------------------------ redirects
def safe_next(value: str | None) -> str:
    """`value` if it is a path inside /admin or /agent on this host, else the dashboard.

    Anything else (another host, a scheme, a path elsewhere) gives the dashboard: no open redirect.
    """
    if not value or len(value) > 2000:
        return DEFAULT_NEXT
    if "\\" in value or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return DEFAULT_NEXT
    if not any(parts.path == area or parts.path.startswith(area + "/") for area in NEXT_AREAS):
        return DEFAULT_NEXT
    return value


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?{urlencode({'next': here})}", status_code=303)


# ------------------------------------------------------------------ pages
def admin_page(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """Render an admin page: the agent, the CSRF token, no caching, the agent's language."""
    context = dict(context or {})
    context.setdefault("agent", getattr(request.state, "agent", None))
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    response = render(
        request, name, context, status_code=status_code, language=page_language(request)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def csrf_failed(request: Request) -> HTMLResponse:
    return admin_page(request, "admin/denied.html", {"reason": "csrf"}, status_code=403)


# ------------------------------------------------------------------ CSRF
def origin_ok(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


async def form_csrf_ok(request: Request, session_id: str) -> bool:
    if not origin_ok(request):
        return False
    form = await request.form()
    token = form.get("csrf_token")
    return isinstance(token, str) and csrf_ok(_signer(request), session_id, token)


def login_nonce(request: Request) -> tuple[str, bool]:
    """The pre-session nonce from the login cookie, or a new one (second item: is it new)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return secrets.token_urlsafe(24), True


def login_csrf_token(request: Request, nonce: str) -> str:
    return csrf_token(_signer(request), f"login:{nonce}")


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=SESSION_MAX_AGE,
        path="/admin",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


async def login_csrf_ok(request: Request) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not origin_ok(request):
        return False
    form = await request.form()
    token = form.get("csrf_token")
    return isinstance(token, str) and csrf_ok(_signer(request), f"login:{nonce}", token)


# ------------------------------------------------------------------ the decorator
def require_agent(role: str = "admin") -> Callable[[Endpoint], Endpoint]:
    """Endpoint decorator: signed in (else 303 to the login page), `role` (else 403), CSRF.

    `role="agent"` admits agents and admins, `role="admin"` only admins. The endpoint finds the
    agent in `request.state.agent` and the form token in `request.state.csrf_token`; unsafe
    methods must carry a valid `csrf_token` field or get a 403 before the endpoint runs.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")

    def decorator(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            with use_language(page_language(request)):
                session = await _session(request)
                if session is None:
                    return login_redirect(request)
                agent, sid = session
                request.state.agent = agent
                request.state.csrf_token = csrf_token(_signer(request), sid)
                if ROLES.get(agent.role, 0) < ROLES[role]:
                    return admin_page(
                        request, "admin/denied.html", {"reason": "role"}, status_code=403
                    )
                if request.method not in SAFE_METHODS and not await form_csrf_ok(request, sid):
                    return csrf_failed(request)
                return await handler(request)

        return endpoint

    return decorator


# ------------------------------------------------------------------ login limits
ADDRESS_LIMIT = 20  # attempts per client address ...
ADDRESS_WINDOW = 15 * 60  # ... in this many seconds
FREE_FAILURES = 5  # failures per account and address before the backoff starts
FIRST_DELAY = 1.0  # seconds after the last failure, doubled with every further failure
MAX_DELAY = 5 * 60.0
FORGET_AFTER = 15 * 60.0  # seconds without a failure after which an account's count restarts
ACCOUNT_FAILURES = 100  # failures of one account from all addresses within FORGET_AFTER ...
ACCOUNT_SPACING = 1.0  # ... after which one attempt per this many seconds gets through

Account = tuple[int, str]  # (tenant id, email lowercased)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginGuard:
    """Decides, before any password is hashed, whether a login attempt may go on.

    `address_wait`, then `admit`: each answers 0 (go on) or the seconds to wait. An admitted
    attempt counts as a failure until `succeeded` (or `not_checked`). See the module docstring.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.per_address = RateLimiter(ADDRESS_LIMIT, ADDRESS_WINDOW)
        self._pairs: dict[tuple[Account, str], _Failures] = {}
        # The latest failure times of each account; full and recent means "under attack".
        self._accounts: dict[Account, deque[float]] = {}
        self._account_next: dict[Account, float] = {}

    def address_wait(self, address: str) -> float:
        """Count an attempt from `address`: 0 when it may go on, else the seconds to wait."""
        return self.per_address.hit(address, self.clock())

    def admit(self, account: Account, address: str) -> float:
        """0 when an attempt on `account` may check its password (it then counts as failed)."""
        now = self.clock()
        pair = self._pairs.get((account, address))
        if pair is not None and now - pair.last > FORGET_AFTER:
            pair = None
        if pair is not None and pair.count >= FREE_FAILURES:
            # (The exponent is capped well past MAX_DELAY so a long siege cannot overflow it.)
            doublings = min(pair.count - FREE_FAILURES, 30)
            delay = min(FIRST_DELAY * 2**doublings, MAX_DELAY)
            if now < pair.last + delay:
                return pair.last + delay - now
        recent = self._accounts.get(account)
        if recent is not None and len(recent) == recent.maxlen and recent[0] > now - FORGET_AFTER:
            next_slot = self._account_next.get(account, now)
            if now < next_slot:
                return next_slot - now
            self._account_next[account] = now + ACCOUNT_SPACING
        self._failed(account, address, pair, now)
        return 0.0

    def _failed(self, account: Account, address: str, pair: _Failures | None, now: float) -> None:
        if len(self._pairs) > 10_000 or len(self._accounts) > 10_000:
            self.prune()
        if pair is None:
            pair = self._pairs[(account, address)] = _Failures()
        pair.count += 1
        pair.last = now
        recent = self._accounts.get(account)
        if recent is None:
            recent = self._accounts[account] = deque(maxlen=ACCOUNT_FAILURES)
        recent.append(now)

    def _undo(self, account: Account, address: str) -> None:
        pair = self._pairs.get((account, address))
        if pair is not None and pair.count > 0:
            pair.count -= 1
        recent = self._accounts.get(account)
        if recent:
            recent.pop()

    def succeeded(self, account: Account, address: str) -> None:
        """The password was right: this address starts afresh for this account, and the attempt
        does not count against the address (a team behind one address signs in every morning)."""
        self._undo(account, address)
        self._pairs.pop((account, address), None)
        self.per_address.refund(address)

    def not_checked(self, account: Account, address: str) -> None:
        """The attempt was admitted but its password never checked (hashing was busy)."""
        self._undo(account, address)
        self.per_address.refund(address)

    def prune(self) -> None:
        cutoff = self.clock() - FORGET_AFTER
        for key in [k for k, v in self._pairs.items() if v.last <= cutoff]:
            del self._pairs[key]
        for account in [k for k, v in self._accounts.items() if not v or v[-1] <= cutoff]:
            del self._accounts[account]
            self._account_next.pop(account, None)


_guards: weakref.WeakKeyDictionary[Any, LoginGuard] = weakref.WeakKeyDictionary()


def login_guard(request: Request) -> LoginGuard:
    """The guard of this app instance (so separate apps, e.g. in tests, do not share counts)."""
    app = request.app
    guard = _guards.get(app)
    if guard is None:
        guard = _guards[app] = LoginGuard()
    return guard


def login_account(request: Request, email: str) -> Account:
    return request.state.tenant.id, email.strip().lower()
