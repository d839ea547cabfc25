"""Signed tokens (one salt per purpose), signed session cookies, password hashing, security headers.

(CSRF tokens are `portal.csrf`'s; framing rules and cookies for frames `portal.embedding`'s.)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from itsdangerous import BadSignature, URLSafeTimedSerializer
from itsdangerous import Signer as ItsdangerousSigner
from itsdangerous.signer import HMACAlgorithm
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.services import services

R = TypeVar("R")

# One salt per purpose, so a token made for one purpose never works for another.
SALTS = {
    "agent-session": "portal.agent-session",
    "csrf": "portal.csrf",
    "customer-session": "portal.customer-session",
    "magic-link": "portal.magic-link",
    "form-token": "portal.form-token",
    "rating-link": "portal.rating-link",
    "visitor": "portal.visitor",
    "chat-upload": "portal.chat-upload",
    "chat-file": "portal.chat-file",
    "agent-welcome": "portal.agent-welcome",
}


class _Serializer(URLSafeTimedSerializer):
    """itsdangerous's serializer with its signer made once: it makes one (and derives the key
    again) for every token it checks or makes, and that was a tenth of a form submission."""

    def make_signer(self, salt: str | bytes | None = None) -> ItsdangerousSigner:
        if salt is not None and salt != self.salt:
            return super().make_signer(salt)
        signer: ItsdangerousSigner | None = self.__dict__.get("_signer")
        if signer is None:
            signer = self.__dict__["_signer"] = super().make_signer(salt)
        return signer


class _HMACSHA1(HMACAlgorithm):
    """itsdangerous's HMAC-SHA1 in one call of the standard library's C code (`hmac.digest`),
    where itsdangerous builds an `hmac.HMAC` object, in Python, for every token."""

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.digest(key, value, "sha1")


class Signer:
    """Makes and checks itsdangerous tokens for each purpose in SALTS (HMAC-SHA1, itsdangerous's
    default, by the standard library's own SHA-1: itsdangerous's default wraps it in a Python
    function, and the HMAC of such a function is computed in Python)."""

    def __init__(self, secret_key: str) -> None:
        kwargs = {"digest_method": hashlib.sha1, "algorithm": _HMACSHA1(hashlib.sha1)}
        self._serializers = {
            purpose: _Serializer(secret_key, salt=salt, signer_kwargs=kwargs)
            for purpose, salt in SALTS.items()
        }

    def dumps(self, purpose: str, value: Any) -> str:
        return self._serializers[purpose].dumps(value)

    def loads(self, purpose: str, token: str, max_age: int | None = None) -> Any | None:
        """The signed value, or None when the token is forged, for another purpose, or expired."""
        try:
            return self._serializers[purpose].loads(token, max_age=max_age)
        except BadSignature:
            return None


# scrypt from the standard library: memory-hard, no extra dependency.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, cost: int = _SCRYPT_N) -> str:
    """An scrypt hash that records its own cost. Only tests pass a lower `cost` (a power of
    two): their fixtures make hundreds of accounts, and checking reads the cost from the hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=cost, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${cost}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    computed = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(computed, base64.b64decode(digest))


class HashingBusy(Exception):
    """Every password-hashing slot and queue place is taken: answer 503 at once, do not wait."""


class PasswordHashing:
    """scrypt off the event loop, at most `workers` at a time and `queue` more waiting.

    scrypt is CPU- and memory-bound on purpose, so a burst of sign-in attempts must not take the
    shared thread pool (that would stall every other blocking call of the service) nor line up
    without bound: the `workers` threads are our own, and an attempt that finds all of them busy
    and `queue` attempts already waiting is refused with `HashingBusy` at once. Threads, not an
    asyncio semaphore, keep one instance usable from any event loop of the process.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="password-hash")
        self._lock = threading.Lock()
        self._taken = 0

    def _release(self, _future: Future[Any]) -> None:
        with self._lock:
            self._taken -= 1

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """`fn(*args)` in a hashing thread, or HashingBusy when the queue is full."""
        with self._lock:
            if self._taken >= self.capacity:
                raise HashingBusy
            self._taken += 1
        future = self._executor.submit(fn, *args)
        # Released when the work ends (or is dropped unstarted), not when the caller stops
        # waiting: a client that hangs up must not free a slot whose scrypt still runs.
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)


# One scrypt per core at a time (the machine's other work still gets a share), eight waiting.
password_hashing = PasswordHashing(workers=max(1, min(2, os.cpu_count() or 1)), queue=8)


async def verify_password_bounded(password: str, stored: str) -> bool:
    """`verify_password` through `password_hashing`; raises HashingBusy when it is full."""
    return await password_hashing.run(verify_password, password, stored)


async def hash_password_bounded(password: str) -> str:
    """`hash_password` through `password_hashing`; raises HashingBusy when it is full."""
    return await password_hashing.run(hash_password, password)


CSP = (
    "default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self'"
)


# Two years, subdomains included: every tenant host is a subdomain of the base domain.
HSTS = "max-age=63072000; includeSubDomains"
# As sent (ASGI header names are lower case); a response that sets one keeps its own.
_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
)


class SecurityHeadersMiddleware:
    """Adds CSP, nosniff and a referrer policy to every HTTP response that lacks them.

    With `hsts` (production, where every link is https), also Strict-Transport-Security, so a
    browser that once reached the service never again sends a cookie over plain http.
    Every request crosses this: the headers are encoded once and appended to the raw list,
    with no header object made per response.
    """

    def __init__(
        self,
        app: ASGIApp,
        hsts: bool = False,
        csp_for: Callable[[Scope], bytes | None] | None = None,
    ) -> None:
        self.app = app
        self.added = _SECURITY_HEADERS
        if hsts:
            self.added += ((b"strict-transport-security", HSTS.encode()),)
        # The CSP of a request whose page may be framed elsewhere (a tenant's own sites); None
        # keeps the default, which lets only our own pages frame it.
        self.csp_for = csp_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", ()))
                present = {key for key, _ in raw}
                if self.csp_for is not None and b"content-security-policy" not in present:
                    csp = self.csp_for(scope)  # the tenant is known by now: the scope is shared
                    if csp is not None:
                        raw.append((b"content-security-policy", csp))
                        present.add(b"content-security-policy")
                raw += [pair for pair in self.added if pair[0] not in present]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def signed_session(
    request: HTTPConnection,
    cookie: str,
    purpose: str,
    max_age: int,
    *,
    tenant_key: str,
    id_key: str,
    sid_key: str,
) -> dict[str, Any] | None:
    """A signed session cookie's payload if valid, unexpired and for this request's tenant.

    The payload must carry the tenant id, an integer subject id and a string session id under
    the given keys; anything else is treated as no session.
    """
    token = request.cookies.get(cookie)
    if not token:
        return None
    data = services(request).signer.loads(purpose, token, max_age=max_age)
    if not isinstance(data, dict):
        return None
    tenant = getattr(request.state, "tenant", None)
    if tenant is None or data.get(tenant_key) != tenant.id:
        return None
    if not isinstance(data.get(id_key), int) or not isinstance(data.get(sid_key), str):
        return None
    return data
