"""One pooled httpx client that turns a contract call into its operation's HTTP request.

Generic: the request is built from the method's arguments and the operations table, the answer
decoded with the wire adapters. Reads and writes are retried (with exponential backoff and full
jitter) on connection errors, timeouts, 5xx, 429 and "still in progress" 409s, because every
write carries an Idempotency-Key reused across its retries: the contract's own key where the
method has one, else one made for the call. After the last try: `CoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from portal.core.api.idempotency import HEADER, MAX_KEY_LENGTH
from portal.core.api.operations import Operation, by_method
from portal.core.api.wire import adapter
from portal.core.contract import Conflict, NotFound

# The chat's `client_id` is a message's idempotency key within its conversation.
_CHAT_MESSAGE_METHODS = ("add_chat_message", "post_chat_message")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# 4xx answers about the edge or the moment, not the write: sending the same write later can work.
_NOT_FINAL = frozenset({401, 408, 425, 429})


# Connections to the core at once; requests beyond wait for one. Few: httpcore's pool does work
# per request that grows with its connections and its queue (at 32, a third of the edge's CPU
# on a write), and each connection carries hundreds of requests a second.
MAX_CONNECTIONS = 8


class CoreUnavailable(Exception):
    """The core did not answer (after retries), answered with a server error, or refused the
    key: nothing the caller's input could fix. `retry_after`: the core's own hint, in seconds."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """The core refused a write for good (`send_once`): sending it again gets the same answer.
    `title` and `detail` come from the core's problem document."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # the first try and three retries
    base_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to the doubled base (AWS's advice for many clients)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


Timer = Callable[[str], AbstractContextManager[None]]


def _no_timer(operation: str) -> AbstractContextManager[None]:
    return nullcontext()


def _header_key(key: str) -> str:
    """A key the header can carry: as it is when it is short visible ASCII, else its digest
    (the same on every retry, so the core's own dedupe still agrees)."""
    if 0 < len(key) <= MAX_KEY_LENGTH and all("!" <= ch <= "~" for ch in key):
        return key
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class CoreClient:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        timer: Timer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._timer = timer or _no_timer
        self._operations = by_method()
        self.http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "portal-edge"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            # Every connection kept: one closed after use is reopened at once under load, and
            # the pool's work per request grows with the connections it holds.
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def operation(self, domain: str, method: str, args: dict[str, Any]) -> Operation:
        """The method's operation for these arguments: the one whose path they fill."""
        for op in self._operations[(domain, method)]:
            if all(args.get(p.name) is not None for p in op.located("path")):
                if all(args.get(name) is None for name in op.fixed):
                    return op
        raise ValueError(f"{domain}.{method}: no operation takes these arguments")

    def request_parts(
        self, op: Operation, args: dict[str, Any]
    ) -> tuple[str, dict[str, str], bytes | None]:
        """The path (under the base URL), query and body of the call."""
        path = op.path
        for param in op.located("path"):
            path = path.replace(f"{{{param.name}}}", quote(str(args[param.name]), safe=""))
        query = {
            p.name: _query_value(args[p.name])
            for p in op.located("query")
            if args.get(p.name) is not None
        }
        body: bytes | None = None
        if op.body_param is not None:
            body = adapter(op.body_param.annotation).dump_json(args[op.body_param.name])
        elif op.located("body"):
            members = {
                p.name: adapter(p.annotation).dump_python(args[p.name], mode="json")
                for p in op.located("body")
                if p.name in args
            }
            body = _encode(members)
        return "/core/v1" + path, query, body

    def idempotency_key(self, op: Operation, args: dict[str, Any]) -> str:
        if op.idempotency_param:
            return _header_key(str(args["idempotency_key"]))
        if op.method in _CHAT_MESSAGE_METHODS:
            seed = f"chat-message\n{args['conversation_id']}\n{args['draft'].client_id}"
            return _digest_key(seed)
        return uuid.uuid4().hex  # made once per logical call, reused by its retries

    async def call(self, domain: str, method: str, args: dict[str, Any]) -> Any:
        op = self.operation(domain, method, args)
        path, query, body = self.request_parts(op, args)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if op.is_write:
            headers[HEADER] = self.idempotency_key(op, args)
        with self._timer(op.id):
            response = await self._send(op, path, query, body, headers)
        return self._answer(op, response)

    async def ping(self) -> None:
        """One cheap authenticated call, no retries (readiness checks time it themselves)."""
        try:
            response = await self.http.get("/core/v1/capabilities")
        except httpx.TransportError as error:
            raise CoreUnavailable(f"the core did not answer: {error}") from error
        if response.status_code != 200:
            raise CoreUnavailable(f"the core answered {response.status_code} {_detail(response)}")

    async def send_once(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str,
        content: bytes | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One attempt at a keyed write, no retries (the caller, e.g. the outbox, schedules
        them): the decoded JSON answer (None for 204). `path` is under the base URL
        ("/core/v1/..."); the body is `json`, or `content` when already encoded (the bytes must
        be the same on every attempt with one key). Raises `Refused` for a final 4xx (a 409
        without Retry-After is the contract's Conflict: final), and `CoreUnavailable` for a
        network error, a timeout, 5xx, 409 with Retry-After ("the first request with this key
        still runs"), 429, and 401/408/425 (the edge's key or the moment, not the write, is
        wrong), with the core's Retry-After seconds when it sent them."""
        if json is not None and content is None:
            content = _encode(json)
        headers = {HEADER: _header_key(idempotency_key)}
        if content is not None:
            headers["Content-Type"] = "application/json"
        verb = method.upper()
        try:
            with self._timer("send_once"):  # one label: paths carry ids
                response = await self.http.request(
                    verb,
                    path,
                    content=content,
                    headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
        except httpx.TransportError as error:  # refused, reset, timed out
            raise CoreUnavailable(
                f"{verb} {path}: the core did not answer ({type(error).__name__}: {error})"
            ) from error
        status = response.status_code
        if status == 204:
            return None
        if 200 <= status < 300:
            return response.json() if response.content else None
        title, detail = _problem(response)
        if status >= 500 or status in _NOT_FINAL or _in_progress(response):
            summary = f"{status} {title}: {detail}" if detail else f"{status} {title}"
            raise CoreUnavailable(f"{verb} {path}: {summary}", _retry_after(response))
        raise Refused(status, title, detail)

    async def get_json(self, path: str) -> Any:
        response = await self._send(None, path, {}, None, {})
        if response.status_code != 200:
            raise CoreUnavailable(f"GET {path}: {response.status_code} {_detail(response)}")
        return response.json()

    async def _send(
        self,
        op: Operation | None,
        path: str,
        query: dict[str, str],
        body: bytes | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        verb = op.verb if op else "GET"
        failure = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                await asyncio.sleep(self.retry.delay(attempt))
            try:
                response = await self.http.request(
                    verb, path, params=query, content=body, headers=headers
                )
            except httpx.TransportError as error:  # connection refused, reset, timeout
                failure = f"{type(error).__name__}: {error}"
                continue
            if response.status_code in _RETRY_STATUSES or _in_progress(response):
                failure = f"{response.status_code} {_detail(response)}"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit() and attempt + 1 < self.retry.attempts:
                    await asyncio.sleep(min(float(retry_after), self.retry.max_delay))
                continue
            return response
        raise CoreUnavailable(f"{verb} {path}: the core did not answer ({failure})")

    def _answer(self, op: Operation, response: httpx.Response) -> Any:
        status = response.status_code
        if status == 204:
            return None
        if status == 200:
            return op.result_adapter.validate_json(response.content)
        detail = _detail(response)
        if status == 404:
            raise NotFound(detail)
        if status == 409:
            raise Conflict(detail)
        if status == 401:
            raise CoreUnavailable(f"the core refused the key: {detail}")
        if status in (400, 413, 422):
            raise ValueError(detail)
        raise CoreUnavailable(f"{op.verb} {op.path}: unexpected {status} {detail}")


def _encode(value: Any) -> bytes:
    """Compact JSON, the same bytes for the same value (the core's key check compares them)."""
    return json.dumps(value, separators=(",", ":")).encode()


def _digest_key(seed: str) -> str:
    return "sha256-" + hashlib.sha256(seed.encode()).hexdigest()


def _in_progress(response: httpx.Response) -> bool:
    """The core's 409 for a retry while the first request with the key still runs (as opposed
    to the contract's Conflict, which is an answer)."""
    return response.status_code == 409 and "retry-after" in response.headers


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: our core sends seconds; the caller's backoff decides


def _problem(response: httpx.Response) -> tuple[str, str]:
    """The problem document's title and detail (the reason phrase when there is none)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase, response.text[:300]
    if not isinstance(body, dict):
        return response.reason_phrase, ""
    detail = str(body.get("detail") or "")
    errors = body.get("errors")
    if isinstance(errors, list):  # say which fields, so whoever reads the reason can act
        fields = "; ".join(
            f"{e.get('pointer', '?')}: {e.get('detail', '')}" for e in errors if isinstance(e, dict)
        )
        detail = f"{detail} ({fields})" if fields else detail
    return str(body.get("title") or response.reason_phrase), detail


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or "")
    return ""
