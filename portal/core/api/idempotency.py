"""Idempotency-Key for the core API's writes (IETF draft "The Idempotency-Key HTTP Header Field").

Every write (POST, PUT, PATCH, DELETE) carries a key. The first request with a key inserts a
"running" record; the table's primary key (tenant, key) lets exactly one of two racing requests
in, with no read-then-write window. When it is done its answer is stored, and a retry gets that
answer replayed (same status, same body). A retry while it runs gets 409; the same key with a
different request (method, path, query or body) gets 422. A record left "running" by a process
that died is taken over once its lease (`LEASE`) has run out, so nothing waits forever; the
contract's own idempotency keys then keep the retried write from being stored twice. The lease
is short (a core killed mid-write holds up that write's retries, and every write queued behind
it at an edge, for that long) and renewed while the write runs (`leased`), so a slow write is
never taken over.

Records are kept for at least `KEEP` and purged lazily (by the writes themselves) after
`PURGE_AFTER`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.api.problems import ApiProblem
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import aware, utcnow

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEEP = timedelta(hours=24)
PURGE_AFTER = timedelta(hours=48)
PURGE_EVERY = timedelta(minutes=10)
# A "running" record whose lease ran out was left by a process that died: the process running a
# write renews its lease every RENEW_EVERY_S.
LEASE = timedelta(seconds=5)
RENEW_EVERY_S = 1.5


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str
    content_type: str


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests "the same request" for one key."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def parse_key(header: str | None) -> str:
    """The key of an `Idempotency-Key` header: a structured-field string (`"abc"`), or the bare
    token most clients send. 400 problem when it is missing or unusable."""
    if header is None or not header.strip():
        raise ApiProblem(
            400,
            "Idempotency-Key required",
            f"Every write needs an {HEADER} header (e.g. a UUID), "
            "the same one on each retry of the same request.",
        )
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        raise ApiProblem(
            400,
            "Bad Idempotency-Key",
            f"The {HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters.",
        )
    return key


class IdempotencyStore:
    def __init__(self, engine: CoreEngine) -> None:
        self._engine = engine
        self._next_purge: datetime | None = None

    async def begin(self, tenant_id: int, key: str, print_: str) -> StoredAnswer | None:
        """Claim the key for this request: None means "go ahead, then `finish` or `abandon`";
        a StoredAnswer is the first request's answer to replay. Raises ApiProblem 409 / 422."""
        now = utcnow()
        await self._purge_if_due(now)
        if await self._insert(tenant_id, key, print_, now):
            return None
        c = t.core_idempotency.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        c.fingerprint, c.state, c.status, c.body, c.content_type, c.expires_at
                    ).where((c.tenant_id == tenant_id) & (c.key == key))
                )
            ).first()
        if row is None:  # purged between our insert and this read: try once more
            if await self._insert(tenant_id, key, print_, now):
                return None
            raise _in_progress()
        if row.fingerprint != print_:
            raise ApiProblem(
                422,
                "Idempotency-Key reused",
                f"This {HEADER} was used for a different request (method, path or body); "
                "use a new key for a new request.",
            )
        if row.state == "done":
            return StoredAnswer(row.status, row.body, row.content_type)
        if aware(row.expires_at) > now:
            raise _in_progress()
        # The process that ran it died: take it over, unless another request just did.
        async with self._engine.begin() as conn:
            taken = await conn.execute(
                t.core_idempotency.update()
                .where(
                    (c.tenant_id == tenant_id)
                    & (c.key == key)
                    & (c.state == "running")
                    & (c.expires_at == row.expires_at)
                )
                .values(expires_at=now + LEASE)
            )
        if taken.rowcount != 1:
            raise _in_progress()
        return None

    @asynccontextmanager
    async def leased(self, tenant_id: int, key: str) -> AsyncIterator[None]:
        """Keep the running record's lease from running out while the block runs."""
        renewing = asyncio.create_task(self._renew(tenant_id, key))
        try:
            yield
        finally:
            renewing.cancel()

    async def _renew(self, tenant_id: int, key: str) -> None:
        c = t.core_idempotency.c
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            async with self._engine.begin() as conn:
                await conn.execute(
                    t.core_idempotency.update()
                    .where((c.tenant_id == tenant_id) & (c.key == key) & (c.state == "running"))
                    .values(expires_at=utcnow() + LEASE)
                )

    async def finish(self, tenant_id: int, key: str, answer: StoredAnswer) -> None:
        c = t.core_idempotency.c
        async with self._engine.begin() as conn:
            await conn.execute(
                t.core_idempotency.update()
                .where((c.tenant_id == tenant_id) & (c.key == key))
                .values(
                    state="done",
                    status=answer.status,
                    body=answer.body,
                    content_type=answer.content_type,
                )
            )

    async def abandon(self, tenant_id: int, key: str) -> None:
        """Forget the key (the write failed on our side), so that a retry runs it again."""
        c = t.core_idempotency.c
        async with self._engine.begin() as conn:
            await conn.execute(
                t.core_idempotency.delete().where((c.tenant_id == tenant_id) & (c.key == key))
            )

    async def _insert(self, tenant_id: int, key: str, print_: str, now: datetime) -> bool:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    t.core_idempotency.insert().values(
                        tenant_id=tenant_id,
                        key=key,
                        fingerprint=print_,
                        state="running",
                        created_at=now,
                        expires_at=now + LEASE,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def _purge_if_due(self, now: datetime) -> None:
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        async with self._engine.begin() as conn:
            await conn.execute(
                t.core_idempotency.delete().where(
                    t.core_idempotency.c.created_at < now - PURGE_AFTER
                )
            )


def _in_progress() -> ApiProblem:
    return ApiProblem(
        409,
        "Request in progress",
        f"A request with this {HEADER} is still being processed; retry later for its answer.",
        headers={"Retry-After": "1"},
    )
