"""Webhook endpoints: registered per tenant through the API or `portal core-webhook`.

A new endpoint gets a secret (`whsec_` + base64 of 32 random bytes, as Standard Webhooks has
them) shown once, and starts at the journal's newest cursor: it gets what happens from now on,
and an edge that wants older events reads the feed.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import aware, inserted_id, utcnow
from portal.core.journal import Journal

MAX_URL = 2000
MAX_ENDPOINTS = 20  # per tenant: each is a task and a stream of requests

_w = t.core_webhooks.c


class BadEndpoint(ValueError):
    """A URL no endpoint can have; the message says why."""


@dataclass(frozen=True)
class Endpoint:
    id: int
    tenant_id: int
    url: str
    secret: str
    delivered_through: int
    failed_attempts: int
    last_error: str
    disabled_at: datetime | None
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """What the API lists: everything but the secret."""
        return {
            "id": self.id,
            "url": self.url,
            "delivered_through": str(self.delivered_through),
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error,
            "disabled": self.disabled_at is not None,
            "created_at": self.created_at.isoformat(),
        }


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def checked_url(url: object) -> str:
    """`url` if it can take deliveries (absolute http or https); BadEndpoint otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise BadEndpoint("`url` must be an absolute http or https URL")
    url = url.strip()
    if len(url) > MAX_URL:
        raise BadEndpoint(f"`url` must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise BadEndpoint("`url` is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadEndpoint("`url` must be an absolute http or https URL")
    if parts.username or parts.password:
        raise BadEndpoint("`url` must not carry credentials; the signature authenticates us")
    if any(ord(c) < 33 for c in url):
        raise BadEndpoint("`url` must not contain spaces or control characters")
    return url


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        secret=row.secret,
        delivered_through=row.delivered_through,
        failed_attempts=row.failed_attempts,
        last_error=row.last_error,
        disabled_at=aware(row.disabled_at) if row.disabled_at else None,
        created_at=aware(row.created_at),
    )


class Endpoints:
    """The `core_webhooks` table."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine
        # Set (and replaced) when endpoints are added, removed or disabled: the sender looks.
        self.changed = asyncio.Event()

    async def create(self, tenant_id: int, url: object) -> Endpoint:
        """A new endpoint at `url` (checked: BadEndpoint says what is wrong)."""
        checked = checked_url(url)
        start = await Journal(self.engine).newest()
        async with self.engine.begin() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(t.core_webhooks)
                .where(_w.tenant_id == tenant_id)
            )
            if count >= MAX_ENDPOINTS:
                raise BadEndpoint(f"a tenant may have at most {MAX_ENDPOINTS} webhook endpoints")
            secret, now = new_secret(), utcnow()
            insert = t.core_webhooks.insert().values(
                tenant_id=tenant_id,
                url=checked,
                secret=secret,
                delivered_through=start,
                created_at=now,
            )
            endpoint_id = inserted_id(await conn.execute(insert))
        self._changed()
        return Endpoint(endpoint_id, tenant_id, checked, secret, start, 0, "", None, now)

    async def list(self, tenant_id: int | None = None) -> list[Endpoint]:
        """The tenant's endpoints (every tenant's for None), oldest first."""
        query = sa.select(t.core_webhooks).order_by(_w.id)
        if tenant_id is not None:
            query = query.where(_w.tenant_id == tenant_id)
        async with self.engine.connect() as conn:
            return [_endpoint(row) for row in (await conn.execute(query)).all()]

    async def get(self, endpoint_id: int) -> Endpoint | None:
        async with self.engine.connect() as conn:
            query = sa.select(t.core_webhooks).where(_w.id == endpoint_id)
            row = (await conn.execute(query)).first()
        return _endpoint(row) if row else None

    async def delete(self, tenant_id: int, endpoint_id: int) -> bool:
        """Remove the tenant's endpoint; False when it has none of that id."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.core_webhooks.delete().where((_w.id == endpoint_id) & (_w.tenant_id == tenant_id))
            )
        self._changed()
        return bool(result.rowcount)

    async def delivered(self, endpoint_id: int, cursor: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                t.core_webhooks.update()
                .where((_w.id == endpoint_id) & (_w.delivered_through < cursor))
                .values(delivered_through=cursor, failed_attempts=0, last_error="")
            )

    async def rewind(self, endpoint_id: int, cursor: int) -> None:
        """Set the cursor even backwards: the journal no longer has what it pointed at."""
        async with self.engine.begin() as conn:
            await conn.execute(
                t.core_webhooks.update()
                .where(_w.id == endpoint_id)
                .values(delivered_through=cursor)
            )

    async def failed(self, endpoint_id: int, error: str, *, gone: bool = False) -> None:
        values: dict[str, Any] = {
            "failed_attempts": _w.failed_attempts + 1,
            "last_error": error[:500],
        }
        if gone:
            values["disabled_at"] = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(t.core_webhooks.update().where(_w.id == endpoint_id).values(values))
        if gone:
            self._changed()

    def _changed(self) -> None:
        woken, self.changed = self.changed, asyncio.Event()
        woken.set()
