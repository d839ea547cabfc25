"""Request bodies are read against a cap as they arrive, and never waited on forever.

Starlette reads a body whole (`request.body()`, `request.form()`) before a handler can look at
its size, and a chunked body has no Content-Length to check up front. This middleware counts the
bytes as the server hands them over and stops at the route's cap with a 413: a declared length
over the cap is refused before a byte is read, and a chunked body is cut off at the cap, so no
route ever holds (in memory or in a temporary file) more than its cap.

A body that stops arriving is the server's to cut off (`portal.serving`: 408, and the connection
closed); the app then hears that the client is gone, as when a client leaves in the middle of
its body. Nobody is left to answer, so that ends the request here, quietly.

Caps live in one table, `CAPS`: most routes take small forms or JSON (DEFAULT_CAP); the routes
that take files get room for the tenant's attachment limits; the admin takes long articles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.asgi_headers import header
from portal.attachments import Limits
from portal.core.contract import Tenant

KIB = 1024
MIB = 1024 * KIB
DEFAULT_CAP = 64 * KIB
ADMIN_CAP = 4 * MIB  # an article of 200,000 characters, percent-encoded
MULTIPART_ROOM = 2 * MIB  # text fields and part headers beside the files


def files_cap(limits: Limits) -> int:
    """A body with every file the tenant allows, each at its largest, and the text beside them."""
    return limits.max_count * limits.max_bytes + MULTIPART_ROOM


def one_file_cap(limits: Limits) -> int:
    return limits.max_bytes + 64 * KIB


Cap = Callable[[Tenant | None], int]


def _tenant_cap(of_limits: Callable[[Limits], int]) -> Cap:
    def cap(tenant: Tenant | None) -> int:
        return of_limits(Limits.for_tenant(tenant) if tenant is not None else Limits())

    return cap


def _fixed(size: int) -> Cap:
    return lambda tenant: size


# (method-less path pattern, cap): the first match wins; anything else gets DEFAULT_CAP.
CAPS: list[tuple[re.Pattern[str], Cap]] = [
    (re.compile(r"/messenger/uploads"), _tenant_cap(one_file_cap)),
    (re.compile(r"/(api/)?forms/\d+(/submissions)?"), _tenant_cap(files_cap)),
    (re.compile(r"/portal/tickets/\d+/replies"), _tenant_cap(files_cap)),
    (re.compile(r"/agent/tickets/\d+/reply"), _tenant_cap(files_cap)),
    (re.compile(r"/admin/.*"), _fixed(ADMIN_CAP)),
]


def body_cap(path: str, tenant: Tenant | None) -> int:
    """The largest body the route at `path` reads, for this tenant."""
    for pattern, cap in CAPS:
        if pattern.fullmatch(path):
            return cap(tenant)
    return DEFAULT_CAP


def _human(size: int) -> str:
    return f"{size / MIB:g} MB" if size >= MIB else f"{size // KIB} KB"


class BodyLimitMiddleware:
    """Counts each HTTP request's body against `body_cap` while it streams in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope["path"], scope.get("state", {}).get("tenant"))
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            await _refuse(scope, send, 413, _too_large(cap))
            return

        received = 0
        more_body = True
        refused: HTTPException | None = None
        response_started = swallowed = gone = False

        async def capped_receive() -> Message:
            nonlocal received, more_body, refused, gone
            if refused is not None:
                raise refused
            message = await receive()
            if not more_body:
                return message  # e.g. a stream waiting for the client to leave
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > cap:
                    refused = HTTPException(413, _too_large(cap))
                    raise refused
            elif message["type"] == "http.disconnect":
                gone = True  # in the middle of the body
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started, swallowed
            if message["type"] == "http.response.start" and refused is not None:
                if message["status"] != refused.status_code:
                    # A handler swallowed the refusal (a broad `except`) and answered something
                    # else: that answer would be wrong, ours follows instead.
                    swallowed = True
                    return
            if swallowed:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except ClientDisconnect:
            if not gone:
                raise
            return  # (the server cut a stalled body off, or the client left): nobody to answer
        except HTTPException:
            if refused is None or response_started:
                raise
        if refused is not None and not response_started:
            await _refuse(scope, send, refused.status_code, str(refused.detail))


def _content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def _too_large(cap: int) -> str:
    return f"The request is too large: at most {_human(cap)} may be sent here."


def refusal(scope: Scope, message: str) -> tuple[bytes, bytes]:
    """A refused body's answer and its content type: JSON for the APIs and clients asking for
    it, else text."""
    accept = header(scope, b"accept") or b""
    if b"json" in accept or scope.get("path", "").startswith(("/api/", "/messenger/")):
        return json.dumps({"error": message}).encode(), b"application/json"
    return message.encode(), b"text/plain; charset=utf-8"


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """A short JSON or text answer, the rest of the body unread.

    No `Connection: close`: closing a socket with unread data sends a reset, and the client
    would lose this answer with it. uvicorn stops reading once its small buffer is full and
    closes the connection when its keep-alive timeout passes with nothing read.
    """
    body, content_type = refusal(scope, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
