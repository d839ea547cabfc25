"""The outbox's rows as the code sees them: `Row` (stored), `NewRow` (to store), their states
and the references customers quote."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.core.embedded.rows import aware
from portal.core.embedded.rows import utcnow as now

PENDING, SENT, SET_ASIDE, DISCARDED = "pending", "sent", "set_aside", "discarded"
# Unambiguous to read out on the phone: no 0/O, 1/I/L.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_reference() -> str:
    """A local reference the customer can quote: `R-` and eight characters."""
    return "R-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class Row:
    id: int
    reference: str
    tenant_id: int
    kind: str
    domain: str
    method: str
    stream: str
    parent_id: int | None
    ticket_id: int | None
    customer_id: int | None
    email: str
    args: dict[str, Any]
    idempotency_key: str
    state: str
    attempts: int
    next_at: datetime
    created_at: datetime
    lease_owner: str | None
    result: Any
    reason: str

    @classmethod
    def of(cls, record: Any) -> Row:
        return cls(
            id=record.id,
            reference=record.reference,
            tenant_id=record.tenant_id,
            kind=record.kind,
            domain=record.domain,
            method=record.method,
            stream=record.stream,
            parent_id=record.parent_id,
            ticket_id=record.ticket_id,
            customer_id=record.customer_id,
            email=record.email,
            args=json.loads(record.args),
            idempotency_key=record.idempotency_key,
            state=record.state,
            attempts=record.attempts,
            next_at=aware(record.next_at),
            created_at=aware(record.created_at),
            lease_owner=record.lease_owner,
            result=json.loads(record.result) if record.result else None,
            reason=record.reason,
        )


@dataclass(frozen=True)
class NewRow:
    """A write to store: what `OutboxStore.add` needs."""

    tenant_id: int
    kind: str
    domain: str
    method: str
    stream: str
    args: dict[str, Any]  # as JSON values
    idempotency_key: str
    parent_id: int | None = None
    ticket_id: int | None = None
    customer_id: int | None = None
    email: str = ""


__all__ = ["DISCARDED", "PENDING", "SENT", "SET_ASIDE", "NewRow", "Row", "new_reference", "now"]
