"""The staff pages' guard and login: role checks, CSRF of the pages, login CSRF and limits.

The staff session itself (its cookie, loading the agent) is `portal.sessions.staff`; this module
holds what the admin and agent pages put around it.

Guard
    `require_agent(role)` stands in front of every staff page: no session is a 303 to the login
    page, too small a role a 403 page, and every POST form must carry `csrf_token` =
    `csrf_token(signer, session id)` (`portal.csrf`), else a 403 page that asks to reload the
    page. A POST whose `Origin` header names another host is refused too (browsers send it on
    cross-site form posts; it is only checked when present).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from portal.csrf import SAFE_METHODS, csrf_ok, csrf_token, form_csrf_ok
from portal.ratelimit import RateLimiter
from portal.redirects import staff_login_redirect
from portal.request_helpers import csrf_token_of, same_origin, tenant_of
from portal.security import Signer
from portal.services import services
from portal.sessions.staff import SESSION_MAX_AGE, current_session
from portal.templating import render

LOGIN_COOKIE = "portal_login"
LOGIN_COOKIE_PATH = "/admin"
ROLES = {"agent": 1, "admin": 2}

Endpoint = Callable[[Request], Awaitable[Response]]


def _signer(request: Request) -> Signer:
    return services(request).signer


# ------------------------------------------------------------------ pages
def admin_page(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """Render an admin page: the agent, the CSRF token, no caching, the request's language."""
    context = dict(context or {})
    context.setdefault("agent", getattr(request.state, "agent", None))
    context.setdefault("csrf_token", csrf_token_of(request))
    context.setdefault("has_outbox", services(request).outbox is not None)  # a remote core's
    response = render(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def csrf_failed(request: Request) -> HTMLResponse:
    """The 403 page for a form that is too old or was not sent from our page."""
    return admin_page(request, "admin/denied.html", {"reason": "csrf"}, status_code=403)


# ------------------------------------------------------------------ login CSRF
def login_nonce(request: Request) -> tuple[str, bool]:
    """The pre-session nonce from the login cookie, or a new one (second item: is it new)."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return secrets.token_urlsafe(24), True


def login_csrf_token(request: Request, nonce: str) -> str:
    return csrf_token(_signer(request), f"login:{nonce}")


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    """Keep the login form's nonce in its own cookie, for the POST to prove it came from us."""
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=SESSION_MAX_AGE,
        path=LOGIN_COOKIE_PATH,
        secure=bool(services(request).settings.production),
        httponly=True,
        samesite="lax",
    )


def drop_login_cookie(response: Response) -> None:
    """Forget the nonce once signed in: the session's CSRF token takes over."""
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_COOKIE_PATH)


async def login_csrf_ok(request: Request) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not nonce or not same_origin(request):
        return False
    form = await request.form()
    token = form.get("csrf_token")
    return isinstance(token, str) and csrf_ok(_signer(request), f"login:{nonce}", token)


# ------------------------------------------------------------------ the decorator
def require_agent(role: str = "admin") -> Callable[[Endpoint], Endpoint]:
    """Endpoint decorator: signed in (else 303 to the login page), `role` (else 403), CSRF.

    `role="agent"` admits agents and admins, `role="admin"` only admins. The endpoint reads the
    agent with `agent_of(request)` and the form token with `csrf_token_of(request)`
    (`portal.request_helpers`); unsafe methods must carry a valid `csrf_token` field or get a
    403 before the endpoint runs.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")

    def decorator(handler: Endpoint) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = await current_session(request)
            if session is None:
                return staff_login_redirect(request)
            agent, sid = session
            request.state.agent = agent
            request.state.csrf_token = csrf_token(_signer(request), sid)
            if ROLES.get(agent.role, 0) < ROLES[role]:
                return admin_page(request, "admin/denied.html", {"reason": "role"}, status_code=403)
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
        self.clock = clock  # every window and backoff reads this clock, so tests can move it
        self.per_address = RateLimiter(ADDRESS_LIMIT, ADDRESS_WINDOW)
        # Each account's failures from all addresses; a full window means "under attack".
        self.per_account = RateLimiter(ACCOUNT_FAILURES, FORGET_AFTER)
        self._pairs: dict[tuple[Account, str], _Failures] = {}
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
        if self.per_account.wait(_account_key(account), now):
            next_slot = self._account_next.get(account, now)
            if now < next_slot:
                return next_slot - now
            self._account_next[account] = now + ACCOUNT_SPACING
        self._failed(account, address, pair, now)
        return 0.0

    def _failed(self, account: Account, address: str, pair: _Failures | None, now: float) -> None:
        if len(self._pairs) > 10_000 or len(self._account_next) > 10_000:
            self.prune()
        if pair is None:
            pair = self._pairs[(account, address)] = _Failures()
        pair.count += 1
        pair.last = now
        self.per_account.record(_account_key(account), now)

    def _undo(self, account: Account, address: str) -> None:
        pair = self._pairs.get((account, address))
        if pair is not None and pair.count > 0:
            pair.count -= 1
        self.per_account.refund(_account_key(account))

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
        """Forget what no longer decides anything (the windows prune themselves)."""
        now = self.clock()
        for key in [k for k, v in self._pairs.items() if v.last <= now - FORGET_AFTER]:
            del self._pairs[key]
        # A slot in the past lets the next attempt through, as no slot does.
        for account in [k for k, v in self._account_next.items() if v <= now]:
            del self._account_next[account]


def _account_key(account: Account) -> str:
    tenant_id, email = account
    return f"{tenant_id}:{email}"


def login_account(request: Request, email: str) -> Account:
    return tenant_of(request).id, email.strip().lower()
