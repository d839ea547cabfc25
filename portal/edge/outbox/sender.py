"""One attempt at one outbox write: the HTTP request and what its answer means for the row.

`CoreClient.call` retries by itself and folds every status it does not expect into
`CoreUnavailable`, so it cannot tell the outbox "refused for good" (a 403, 410 or 422: set the
row aside) from "try later" (a 503). The outbox therefore sends through the client's public
pieces (`operation`, `request_parts`, its pooled `http` client) once per attempt, and decides
here: 2xx is accepted; a transport error, a timeout, 5xx, 409 ("the first request with this
key still runs"), 429 and 401 (the edge's key, not the write, is wrong) are `TryLater`, with
the core's `Retry-After` when it sent one; any other 4xx is `Refused` with the problem's title
and detail. A 409 without `Retry-After` is the contract's `Conflict` (e.g. a rating on a ticket
not resolved yet), an answer, so it is `Refused` too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx

from portal.core.api.idempotency import HEADER, MAX_KEY_LENGTH
from portal.core.contract import Conflict, NotFound
from portal.core.remote.client import CoreClient

_TRY_LATER = frozenset({401, 408, 409, 425, 429})


class TryLater(Exception):
    """The core did not take the write now; `retry_after` is its own hint, in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Refused(Exception):
    """The core refused the write for good: sending it again would get the same answer."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail

    @property
    def reason(self) -> str:
        return str(self)

    def as_contract_error(self) -> Exception:
        """What the contract raises for this answer (as `CoreClient` maps it)."""
        if self.status == 404:
            return NotFound(self.detail or self.title)
        if self.status == 409:
            return Conflict(self.detail or self.title)
        return ValueError(self.detail or self.title)


@dataclass(frozen=True)
class Accepted:
    value: Any  # the contract's answer, decoded


def header_key(key: str) -> str:
    """A key the header can carry (the same rule as the client's: short visible ASCII as it is,
    else its digest)."""
    if 0 < len(key) <= MAX_KEY_LENGTH and all("!" <= ch <= "~" for ch in key):
        return key
    return "sha256-" + hashlib.sha256(key.encode()).hexdigest()


async def send_once(
    client: CoreClient, domain: str, method: str, args: dict[str, Any], key: str, timeout: float
) -> Accepted:
    """One try; raises TryLater or Refused."""
    op = client.operation(domain, method, args)
    path, query, body = client.request_parts(op, args)
    headers = {HEADER: header_key(key)}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        response = await client.http.request(
            op.verb, path, params=query, content=body, headers=headers, timeout=timeout
        )
    except httpx.TransportError as error:  # refused, reset, timed out
        raise TryLater(f"the core did not answer: {type(error).__name__} {error}") from error
    status = response.status_code
    if status == 204:
        return Accepted(None)
    if 200 <= status < 300:
        return Accepted(op.result_adapter.validate_json(response.content))
    title, detail = _problem(response)
    retry_after = _retry_after(response)
    if status >= 500 or (status in _TRY_LATER and (status != 409 or retry_after is not None)):
        raise TryLater(f"{status} {title}: {detail}".strip(": "), retry_after)
    raise Refused(status, title, detail)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from our core; the backoff decides


def _problem(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase, response.text[:300]
    if not isinstance(body, dict):
        return response.reason_phrase, ""
    return str(body.get("title") or response.reason_phrase), str(body.get("detail") or "")
