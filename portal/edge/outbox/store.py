"""The outbox's rows in the edge database (`edge_outbox`): add, claim, finish, list.

A row is one contract write (domain, method, its arguments as JSON) with the idempotency key it
is sent with. Rows of one stream (a ticket, a conversation) go out in id order: only the
oldest pending row of a stream is ever claimed. A claim is a lease (`lease_owner`,
`lease_until`) taken by a compare-and-set UPDATE, so edge processes sharing the database never
send one row at the same time; a lease left by a process that died expires and is taken over.

States: `pending` (to send), `sent` (the core accepted it; kept a while for the ticket id a
later reply needs), `set_aside` (the core refused it for good, or its ticket was: waits for an
admin's Retry or Discard), `discarded` (an admin dropped it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from portal.core.embedded.engine import CoreEngine, fetch
from portal.core.embedded.rows import aware
from portal.core.remote.client import MAX_CONNECTIONS
from portal.edge.db import outbox
from portal.edge.outbox.rows import (
    DISCARDED,
    PENDING,
    SENT,
    SET_ASIDE,
    NewRow,
    Row,
    new_reference,
    now,
)

SENT_KEPT = timedelta(days=2)  # long enough for any reply still waiting on its ticket's id
# Rows leased (and then sent side by side) at a time: the connections to the core, so that
# sends do not queue in the HTTP client's pool (whose work per request grows with its queue).
CLAIM_LIMIT = MAX_CONNECTIONS

c = outbox.c


_bind = sa.bindparam
# The statements of every write and every send, built once (`fetch` runs them directly).
_PENDING_IN_STREAM = sa.select(
    sa.exists().where((c.stream == _bind("in_stream")) & (c.state == PENDING))
)
_INSERT = (
    outbox.insert()
    .values({col.name: _bind(col.name) for col in outbox.c if col.name != "id"})
    .returning(*outbox.c)
)
_ANY_IN_STREAM = sa.select(
    sa.exists().where(
        (c.stream == _bind("any_stream"))
        & ((c.state == PENDING) | (c.state == SENT) | (c.state == SET_ASIDE))
    )
)
_FIND = (
    sa.select(outbox)
    .where(
        (c.tenant_id == _bind("find_tenant"))
        & (c.idempotency_key == _bind("find_key"))
        & (c.method == _bind("find_method"))
        & (c.state != DISCARDED)
    )
    .limit(1)
)
_GET = sa.select(outbox).where(c.id == _bind("get_id"))
_SENT = (
    outbox.update()
    .where(c.id == _bind("sent_id"))
    .values(
        state=SENT,
        done_at=_bind("sent_at"),
        lease_owner=None,
        lease_until=None,
        result=_bind("sent_result"),
        attempts=_bind("sent_attempts"),
        reason="",
        ticket_id=sa.func.coalesce(_bind("sent_ticket", type_=sa.Integer), c.ticket_id),
    )
    .returning(c.id)
)


@cache
def _claims(limit: int) -> Any:
    """Lease the due heads of streams (oldest pending row of each) in one statement; a row
    another process leased meanwhile fails the outer conditions and is not returned."""
    free = c.lease_until.is_(None) | (c.lease_until < _bind("claim_now"))
    heads = (
        sa.select(sa.func.min(c.id)).where(c.state == PENDING).group_by(c.stream).scalar_subquery()
    )
    due = (
        sa.select(c.id)
        .where(c.id.in_(heads) & (c.next_at <= _bind("claim_now")) & free)
        .order_by(c.id)
        .limit(limit)
        .scalar_subquery()
    )
    return (
        outbox.update()
        .where(c.id.in_(due) & (c.state == PENDING) & free)
        .values(lease_owner=_bind("claim_owner"), lease_until=_bind("claim_until"))
        .returning(*outbox.c)
    )


class OutboxStore:
    """SQL over `edge_outbox`; every method is one short transaction."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine

    async def add(
        self, new: NewRow, *, owner: str, lease_s: float, state: str = PENDING, reason: str = ""
    ) -> tuple[Row, bool]:
        """Store `new`; the second item says whether it is its stream's head (nothing older
        pending there, no ticket to wait for), in which case it is leased to `owner` for a
        first attempt at once."""
        moment = now()
        async with self.engine.begin() as conn:
            [(older,)] = await fetch(conn, _PENDING_IN_STREAM, {"in_stream": new.stream})
            head = state == PENDING and not older
            values = {
                "reference": new_reference(),
                "tenant_id": new.tenant_id,
                "kind": new.kind,
                "domain": new.domain,
                "method": new.method,
                "stream": new.stream,
                "parent_id": new.parent_id,
                "ticket_id": new.ticket_id,
                "customer_id": new.customer_id,
                "email": new.email,
                "args": json.dumps(new.args, separators=(",", ":")),
                "idempotency_key": new.idempotency_key,
                "state": state,
                "attempts": 0,
                "next_at": moment,
                "lease_owner": owner if head else None,
                "lease_until": moment + timedelta(seconds=lease_s) if head else None,
                "created_at": moment,
                "reason": reason,
                "done_at": None,
                "result": None,
            }
            [record] = await fetch(conn, _INSERT, values)
        return Row.of(record), head

    async def has_stream(self, stream: str) -> bool:
        """Whether anything of `stream` is stored (pending, sent or set aside)."""
        async with self.engine.connect() as conn:
            [(found,)] = await fetch(conn, _ANY_IN_STREAM, {"any_stream": stream})
        return bool(found)

    async def find(self, tenant_id: int, method: str, idempotency_key: str) -> Row | None:
        """The row stored earlier for the same write (a resent form), unless discarded."""
        params = {"find_tenant": tenant_id, "find_key": idempotency_key, "find_method": method}
        async with self.engine.connect() as conn:
            found = await fetch(conn, _FIND, params)
        return Row.of(found[0]) if found else None

    async def get(self, row_id: int) -> Row | None:
        async with self.engine.connect() as conn:
            found = await fetch(conn, _GET, {"get_id": row_id})
        return Row.of(found[0]) if found else None

    async def claim_due(self, owner: str, lease_s: float, limit: int = CLAIM_LIMIT) -> list[Row]:
        """Lease the due heads of streams (oldest pending row of each) to `owner`, oldest
        first."""
        moment = now()
        params = {
            "claim_now": moment,
            "claim_owner": owner,
            "claim_until": moment + timedelta(seconds=lease_s),
        }
        async with self.engine.begin() as conn:
            claimed = await fetch(conn, _claims(limit), params)
        return sorted((Row.of(record) for record in claimed), key=lambda row: row.id)

    async def sent(self, row: Row, result: Any, ticket_id: int | None) -> None:
        params = {
            "sent_id": row.id,
            "sent_at": now(),
            "sent_result": json.dumps(result, separators=(",", ":")),
            "sent_attempts": row.attempts + 1,
            "sent_ticket": ticket_id,
        }
        async with self.engine.begin() as conn:
            await fetch(conn, _SENT, params)

    async def later(self, row: Row, reason: str, delay_s: float) -> None:
        """Try `row` again in `delay_s`; its lease is given back."""
        async with self.engine.begin() as conn:
            await conn.execute(
                outbox.update()
                .where((c.id == row.id) & (c.state == PENDING))
                .values(
                    attempts=row.attempts + 1,
                    next_at=now() + timedelta(seconds=delay_s),
                    lease_owner=None,
                    lease_until=None,
                    reason=reason[:2000],
                )
            )

    async def set_aside(self, row: Row, reason: str, *, with_dependents: bool) -> list[Row]:
        """Set `row` aside with `reason`; with `with_dependents`, the rest of its stream too
        (replies to a ticket the core refused). Returns every row set aside."""
        moment = now()
        async with self.engine.begin() as conn:
            await conn.execute(
                outbox.update()
                .where(c.id == row.id)
                .values(
                    state=SET_ASIDE,
                    attempts=row.attempts + 1,
                    lease_owner=None,
                    lease_until=None,
                    done_at=moment,
                    reason=reason[:2000],
                )
            )
            if with_dependents:
                because = f"Waits for {row.reference}, which was set aside: {reason}"[:2000]
                await conn.execute(
                    outbox.update()
                    .where((c.stream == row.stream) & (c.state == PENDING) & (c.id > row.id))
                    .values(state=SET_ASIDE, lease_owner=None, lease_until=None, reason=because)
                )
            records = (
                await conn.execute(
                    sa.select(outbox).where(
                        (c.stream == row.stream) & (c.state == SET_ASIDE) & (c.id >= row.id)
                    )
                )
            ).all()
        return [Row.of(r) for r in records]

    async def forget(self, row_id: int) -> None:
        """Drop a row whose refusal the customer was shown at once."""
        async with self.engine.begin() as conn:
            await conn.execute(outbox.delete().where(c.id == row_id))

    async def retry(self, tenant_id: int, reference: str) -> bool:
        """An admin's Retry: a set-aside row (and the rows set aside with it, which follow it in
        its stream) is pending again, due now.

        Each gets a new idempotency key: the core keeps its answer to a key (a refusal too) and
        would only repeat it, and a refused write stored nothing that a new key could double.
        """
        async with self.engine.begin() as conn:
            record = (
                await conn.execute(
                    sa.select(c.id, c.stream).where(
                        (c.tenant_id == tenant_id)
                        & (c.reference == reference)
                        & (c.state == SET_ASIDE)
                    )
                )
            ).first()
            if record is None:
                return False
            held = (
                await conn.execute(
                    sa.select(c.id, c.idempotency_key).where(
                        (c.stream == record.stream) & (c.state == SET_ASIDE) & (c.id >= record.id)
                    )
                )
            ).all()
            for row_id, key in held:  # type: ignore[misc]
                fresh = f"{key.split('~retry-')[0][:200]}~retry-{secrets.token_hex(6)}"
                await conn.execute(
                    outbox.update()
                    .where(c.id == row_id)
                    .values(
                        state=PENDING,
                        next_at=now(),
                        done_at=None,
                        lease_owner=None,
                        lease_until=None,
                        idempotency_key=fresh,
                    )
                )
        return True

    async def discard(self, tenant_id: int, reference: str) -> bool:
        """An admin's Discard of a set-aside row (kept, marked, never sent)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                outbox.update()
                .where(
                    (c.tenant_id == tenant_id) & (c.reference == reference) & (c.state == SET_ASIDE)
                )
                .values(state=DISCARDED, done_at=now())
            )
        return bool(done.rowcount)

    async def release(self, owner: str) -> None:
        """Give back `owner`'s leases (its process stops: another may send them at once)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                outbox.update()
                .where((c.lease_owner == owner) & (c.state == PENDING))
                .values(lease_owner=None, lease_until=None)
            )

    async def hurry(self) -> None:
        """Make every pending row due now (the core answers again)."""
        moment = now()
        async with self.engine.begin() as conn:
            await conn.execute(
                outbox.update()
                .where((c.state == PENDING) & (c.next_at > moment))
                .values(next_at=moment)
            )

    async def listing(self, tenant_id: int, states: Sequence[str], limit: int = 200) -> list[Row]:
        async with self.engine.connect() as conn:
            records = (
                await conn.execute(
                    sa.select(outbox)
                    .where((c.tenant_id == tenant_id) & c.state.in_(states))
                    .order_by(c.id)
                    .limit(limit)
                )
            ).all()
        return [Row.of(r) for r in records]

    async def unsent(
        self,
        tenant_id: int,
        *,
        kind: str,
        ticket_id: int | None = None,
        parent_id: int | None = None,
        stream: str | None = None,
    ) -> list[Row]:
        """Rows of `kind` not accepted by the core yet (pending or set aside), oldest first."""
        where = (c.tenant_id == tenant_id) & (c.kind == kind) & c.state.in_((PENDING, SET_ASIDE))
        if stream is not None:
            where &= c.stream == stream
        if ticket_id is not None:
            where &= c.ticket_id == ticket_id
        if parent_id is not None:
            where &= c.parent_id == parent_id
        async with self.engine.connect() as conn:
            records = (await conn.execute(sa.select(outbox).where(where).order_by(c.id))).all()
        return [Row.of(r) for r in records]

    async def has_unsent(self, tenant_id: int) -> bool:
        """Cheap check before merging: does the tenant have anything not sent yet?"""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                sa.select(c.id)
                .where((c.tenant_id == tenant_id) & c.state.in_((PENDING, SET_ASIDE)))
                .limit(1)
            )
        return found is not None

    async def ticket_stream(self, tenant_id: int, ticket_id: int) -> str | None:
        """The stream of the row that created ticket `ticket_id`, if the outbox made it (its
        replies keep following it there)."""
        async with self.engine.connect() as conn:
            return await conn.scalar(
                sa.select(c.stream)
                .where(
                    (c.tenant_id == tenant_id) & (c.kind == "ticket") & (c.ticket_id == ticket_id)
                )
                .limit(1)
            )

    async def stats(self) -> tuple[int, datetime | None]:
        """(rows not yet sent, when the oldest of them was stored)."""
        async with self.engine.connect() as conn:
            record: Any = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(c.created_at)).where(c.state == PENDING)
                )
            ).one()
        count, oldest = record
        return int(count), aware(oldest) if oldest is not None else None

    async def next_due(self) -> datetime | None:
        async with self.engine.connect() as conn:
            due = await conn.scalar(sa.select(sa.func.min(c.next_at)).where(c.state == PENDING))
        return aware(due) if due is not None else None

    async def purge(self) -> None:
        """Forget sent and discarded rows after SENT_KEPT."""
        async with self.engine.begin() as conn:
            await conn.execute(
                outbox.delete().where(
                    c.state.in_((SENT, DISCARDED)) & (c.done_at < now() - SENT_KEPT)
                )
            )
