"""The embedded chat's canned responses: agents' saved answers, typed as /shortcut."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import CannedResponse, Conflict, NotFound
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import from_row, inserted_id, utcnow


class CannedResponses:
    """A tenant's canned responses; `EmbeddedChat` answers the contract with these."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine

    async def list_canned_responses(self, tenant_id: int) -> list[CannedResponse]:
        r = t.canned_responses.c
        query = sa.select(t.canned_responses).where(r.tenant_id == tenant_id).order_by(r.shortcut)
        async with self.engine.connect() as conn:
            return [from_row(CannedResponse, row) for row in await conn.execute(query)]

    async def save_canned_response(
        self, tenant_id: int, shortcut: str, body: str, response_id: int | None = None
    ) -> CannedResponse:
        """Create or change a canned response; shortcuts are stripped, lower case, unique."""
        shortcut = shortcut.strip().lower()
        if not shortcut or len(shortcut) > 100:
            raise Conflict("a shortcut has 1 to 100 characters")
        r = t.canned_responses.c
        try:
            async with self.engine.begin() as conn:
                if response_id is None:
                    result = await conn.execute(
                        t.canned_responses.insert().values(
                            tenant_id=tenant_id, shortcut=shortcut, body=body, created_at=utcnow()
                        )
                    )
                    response_id = inserted_id(result)
                else:
                    result = await conn.execute(
                        t.canned_responses.update()
                        .where(r.id == response_id)
                        .where(r.tenant_id == tenant_id)
                        .values(shortcut=shortcut, body=body)
                    )
                    if result.rowcount == 0:
                        raise NotFound("no such canned response")
        except IntegrityError as exc:
            raise Conflict(f"the shortcut {shortcut!r} is taken") from exc
        assert response_id is not None
        return CannedResponse(response_id, tenant_id, shortcut, body)

    async def delete_canned_response(self, tenant_id: int, response_id: int) -> None:
        r = t.canned_responses.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.canned_responses.delete()
                .where(r.id == response_id)
                .where(r.tenant_id == tenant_id)
            )
        if result.rowcount == 0:
            raise NotFound("no such canned response")
