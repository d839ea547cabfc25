"""One attempt at one outbox write, and what its answer means for the row.

`CoreClient.call` retries by itself and folds what it does not expect into `CoreUnavailable`,
so the outbox sends through `CoreClient.send_once` instead: one attempt, the contract call's
request (the same operation, path and body bytes as `call`, so the core's key check agrees),
and the answer told apart: accepted (decoded as the contract's result), `TryLater` (down,
slow, busy, still running; with the core's Retry-After) or `Refused` (for good: set aside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from portal.core.contract import Conflict, NotFound
from portal.core.remote.client import CoreClient, CoreUnavailable, Refused

__all__ = ["Accepted", "Refused", "TryLater", "contract_error", "send_once"]


class TryLater(Exception):
    """The core did not take the write now; `retry_after` is its own hint, in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Accepted:
    value: Any  # the contract's answer, decoded


def contract_error(refused: Refused) -> Exception:
    """What the contract raises for this refusal (as `CoreClient.call` maps it)."""
    message = refused.detail or refused.title
    if refused.status == 404:
        return NotFound(message)
    if refused.status == 409:
        return Conflict(message)
    return ValueError(message)


async def send_once(
    client: CoreClient, domain: str, method: str, args: dict[str, Any], key: str, timeout: float
) -> Accepted:
    """One try of a contract write; raises TryLater or Refused."""
    op = client.operation(domain, method, args)
    path, query, body = client.request_parts(op, args)
    if query:
        path = f"{path}?{urlencode(query)}"
    try:
        answer = await client.send_once(
            op.verb, path, idempotency_key=key, content=body, timeout=timeout
        )
    except CoreUnavailable as error:
        raise TryLater(str(error), error.retry_after) from error
    return Accepted(None if answer is None else op.result_adapter.validate_python(answer))
