"""The agent session: a signed cookie, sign in/out, role checks, CSRF and a login throttle.

Session
    `portal_agent` holds `signer.dumps("agent-session", {"agent_id", "tenant_id", "sid"})`. It is
    HttpOnly, SameSite=Lax, Secure in production, host-only (no Domain attribute) and expires
    after 12 hours; the signature is checked with the same maximum age. The cookie names its
    tenant and is refused on any other tenant's host, and the agent is read from the core on every
    request, so a deleted agent or a changed role takes effect at once. A fresh random `sid` is
    made at every sign-in; it is what CSRF tokens are bound to.

CSRF
    Every POST form carries `csrf_token` = `csrf_token(signer, sid)`; `require_agent` checks it
    (with `csrf_ok`) before the endpoint runs, and a missing or forged token is a 403 page that
    asks to reload the page. In addition, a POST whose `Origin` header names another host is
    refused (browsers send it on cross-site form posts; it is only checked when present).

Login CSRF
    The login form has no session yet, so it uses a pre-session token: a random nonce in the
    HttpOnly cookie `portal_login` (path /admin) and `csrf_token(signer, "login:" + nonce)` in the
    form. We chose this over checking only Origin/Referer because Referer is often stripped
    (Referrer-Policy, privacy extensions, proxies) and Origin is missing on some clients, which
    forces either letting such requests through (no protection) or refusing real users; the
    token works the same for every client and every other admin form. The Origin check above is
    applied to the login POST too, which also covers a nonce cookie planted from elsewhere.

Throttle
    After 5 failed logins for one email on one tenant within 15 minutes, further attempts get a
    429 until the oldest failure is 15 minutes old, whether the email exists or not (so the
    throttle reveals nothing either). Counts live in memory, per app instance and per process.
"""

from __future__ import annotations

import functools
import secrets
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from portal.core.contract import Agent, NotFound
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
    data = session_data(request)
    if data is None:
        return None
    try:
        agent = await request.state.core.get_agent(request.state.tenant.id, data["agent_id"])
    except NotFound:
        return None
    if agent.tenant_id != request.state.tenant.id:
        return None
    return agent, data["sid"]


async def current_agent(request: Request) -> Agent | None:
    """The signed-in agent of this request's tenant, or None."""
    session = await _session(request)
    return session[0] if session else None


def sign_in(response: Response, request: Request, agent: Agent) -> str:
    """Set the session cookie for `agent` on `response`; returns the new session id."""
    sid = secrets.token_urlsafe(18)
    token = _signer(request).dumps(
        "agent-session", {"agent_id": agent.id, "tenant_id": agent.tenant_id, "sid": sid}
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return sid


def sign_out(response: Response) -> None:
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


# ------------------------------------------------------------------ login throttle
class LoginThrottle:
    """Failed logins per key in a sliding window; `retry_after` > 0 means refuse the attempt."""

    def __init__(
        self, limit: int = 5, window: float = 15 * 60, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[tuple[int, str], deque[float]] = {}

    def _recent(self, key: tuple[int, str]) -> deque[float]:
        now = self.clock()
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def retry_after(self, key: tuple[int, str]) -> float:
        failures = self._recent(key)
        if len(failures) < self.limit:
            return 0.0
        return max(failures[0] + self.window - self.clock(), 1.0)

    def failed(self, key: tuple[int, str]) -> None:
        if len(self._failures) > 10_000:
            self.prune()
        failures = self._recent(key)
        failures.append(self.clock())
        self._failures[key] = failures

    def succeeded(self, key: tuple[int, str]) -> None:
        self._failures.pop(key, None)

    def prune(self) -> None:
        for key in list(self._failures):
            self._recent(key)


_throttles: weakref.WeakKeyDictionary[Any, LoginThrottle] = weakref.WeakKeyDictionary()


def login_throttle(request: Request) -> LoginThrottle:
    """The throttle of this app instance (so separate apps, e.g. in tests, do not share counts)."""
    app = request.app
    throttle = _throttles.get(app)
    if throttle is None:
        throttle = _throttles[app] = LoginThrottle()
    return throttle


def throttle_key(request: Request, email: str) -> tuple[int, str]:
    return request.state.tenant.id, email.strip().lower()
