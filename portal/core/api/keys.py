"""The core API's bearer keys: one tenant each, stored hashed, revocable.

A key reads `core_<id>.<secret>`: the id finds the row, the secret (32 random bytes) is checked
against its stored SHA-256 in constant time. A random secret of that length cannot be guessed,
so a fast hash is enough, and a stolen table signs nobody in.

Lookups are cached for `CACHE_SECONDS` per process, so a revoked key is refused at once by the
process that revoked it and within that time by the others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import aware, utcnow

PREFIX = "core_"
CACHE_SECONDS = 5.0
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: int
    tenant_slug: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not key.startswith(PREFIX):
        return None
    key_id, dot, secret = key[len(PREFIX) :].partition(".")
    if not dot or not key_id or not secret or len(key_id) > 32 or len(secret) > 100:
        return None
    return key_id, secret


class ApiKeys:
    def __init__(self, engine: CoreEngine) -> None:
        self._engine = engine
        # key id -> (when looked up, the row's key or None, the secret's digest)
        self._cache: dict[str, tuple[float, ApiKey | None, str]] = {}

    async def create(self, tenant_id: int, name: str = "") -> tuple[ApiKey, str]:
        """A new key for the tenant: its record, and the key itself (shown once, never stored)."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        async with self._engine.begin() as conn:
            slug = await conn.scalar(sa.select(t.tenants.c.slug).where(t.tenants.c.id == tenant_id))
            await conn.execute(
                t.core_api_keys.insert().values(
                    id=key_id,
                    tenant_id=tenant_id,
                    name=name,
                    secret_hash=_digest(secret),
                    created_at=now,
                )
            )
        return ApiKey(key_id, tenant_id, slug, name, now), f"{PREFIX}{key_id}.{secret}"

    async def list(self, tenant_id: int) -> list[ApiKey]:
        k = t.core_api_keys.c
        query = (
            sa.select(k.id, k.tenant_id, t.tenants.c.slug, k.name, k.created_at, k.revoked_at)
            .join(t.tenants, t.tenants.c.id == k.tenant_id)
            .where(k.tenant_id == tenant_id)
            .order_by(k.created_at, k.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (again is harmless); None when there is no such key."""
        k = t.core_api_keys.c
        async with self._engine.begin() as conn:
            await conn.execute(
                t.core_api_keys.update()
                .where((k.id == key_id) & k.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        self._cache.pop(key_id, None)
        record, _ = await self._fetch_with_digest(key_id)
        return record

    async def lookup(self, key: str) -> ApiKey | None:
        """The live key that `key` is, or None (malformed, unknown, wrong secret or revoked)."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or now - cached[0] > CACHE_SECONDS:
            record, digest = await self._fetch_with_digest(key_id)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            cached = self._cache[key_id] = (now, record, digest)
        _, record, digest = cached
        # Compare even when there is no row, so timing says nothing about which ids exist.
        matches = hmac.compare_digest(_digest(secret), digest or "0" * 64)
        if record is None or not matches or record.revoked_at is not None:
            return None
        return record

    async def _fetch_with_digest(self, key_id: str) -> tuple[ApiKey | None, str]:
        k = t.core_api_keys.c
        query = (
            sa.select(
                k.id,
                k.tenant_id,
                t.tenants.c.slug,
                k.name,
                k.created_at,
                k.revoked_at,
                k.secret_hash,
            )
            .join(t.tenants, t.tenants.c.id == k.tenant_id)
            .where(k.id == key_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return (_key(row), str(row.secret_hash)) if row else (None, "")


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        tenant_slug=row.slug,
        name=row.name,
        created_at=aware(row.created_at),
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
    )
