"""The embedded core's sign-in sessions, kept for its customers domain.

A session is a row named by the SHA-256 of the random token in the browser's cookie, so a copy of
the table signs nobody in, and deleting the row ends the session at once in every process. Every
signed-in request reads its row by primary key, so that statement is built once. Expired rows
are harmless (`get_session` ignores them) and are deleted now and then, when a session is made.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import SESSION_KINDS, Session
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreEngine, fetch
from portal.core.embedded.rows import aware, utcnow

# How often (at most) making a session also deletes the expired ones, per core instance.
PRUNE_EVERY_S = 300.0

_S = t.sessions.c
# (Parameter names differ from column names: a DELETE or UPDATE reserves those.)
_SESSION_BY_ID = sa.select(
    _S.id, _S.tenant_id, _S.kind, _S.subject_id, _S.expires_at, _S.created_at
).where(_S.id == sa.bindparam("session_id"), _S.tenant_id == sa.bindparam("session_tenant"))
_END_SESSION = t.sessions.delete().where(
    _S.id == sa.bindparam("session_id"), _S.tenant_id == sa.bindparam("session_tenant")
)
_END_SESSIONS = t.sessions.delete().where(
    _S.tenant_id == sa.bindparam("session_tenant"),
    _S.kind == sa.bindparam("session_kind"),
    _S.subject_id == sa.bindparam("session_subject"),
)
_PRUNE = t.sessions.delete().where(_S.expires_at < sa.bindparam("now"))


def _session(row: Any) -> Session:
    """A `Session` from a row of `_SESSION_BY_ID` (its columns are the fields, in order)."""
    session_id, tenant_id, kind, subject_id, expires_at, created_at = row
    return Session(session_id, tenant_id, kind, subject_id, aware(expires_at), aware(created_at))


class SignInSessions:
    """Agents' and customers' sessions; `EmbeddedCustomers` answers the contract with these."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine
        self._pruned_at = float("-inf")

    async def create_session(
        self, tenant_id: int, kind: str, subject_id: int, session_id: str, expires_at: datetime
    ) -> Session:
        if kind not in SESSION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SESSION_KINDS)}, not {kind!r}")
        now = utcnow()
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = time.monotonic()
            async with self.engine.begin() as conn:
                await conn.execute(_PRUNE, {"now": now})
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.sessions.insert().values(
                        id=session_id,
                        tenant_id=tenant_id,
                        kind=kind,
                        subject_id=subject_id,
                        expires_at=expires_at,
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # the same create sent again: the row is there (ids are 256 random bits)
        found = await self._stored_session(tenant_id, session_id)
        if found is None or (found.kind, found.subject_id) != (kind, subject_id):
            raise ValueError("the session could not be stored")
        return found

    async def get_session(self, tenant_id: int, session_id: str) -> Session | None:
        session = await self._stored_session(tenant_id, session_id)
        return session if session is not None and session.expires_at > utcnow() else None

    async def _stored_session(self, tenant_id: int, session_id: str) -> Session | None:
        params = {"session_id": session_id, "session_tenant": tenant_id}
        async with self.engine.connect() as conn:
            found = await fetch(conn, _SESSION_BY_ID, params)
        return _session(found[0]) if found else None

    async def end_session(self, tenant_id: int, session_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                _END_SESSION, {"session_id": session_id, "session_tenant": tenant_id}
            )

    async def end_sessions(self, tenant_id: int, kind: str, subject_id: int) -> int:
        params = {"session_tenant": tenant_id, "session_kind": kind, "session_subject": subject_id}
        async with self.engine.begin() as conn:
            result = await conn.execute(_END_SESSIONS, params)
        return result.rowcount
