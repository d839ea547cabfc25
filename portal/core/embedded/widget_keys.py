"""The embedded core's widget identity: signing keys per tenant, customers by external id.

A company's server signs a JWT for its signed-in user with one of the tenant's keys; the front
verifies it (`portal.widget.identity`) and asks here for the customer it names. The external id
(the user's id in the company's system) finds that customer across devices and email changes;
a first identification links the customer who already has the token's email, so their earlier
tickets stay theirs, or makes a new one. The company vouches for the address, so it counts as
verified.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import WIDGET_KEY_ALGORITHMS, Conflict, NotFound, WidgetKey
from portal.core.embedded import schema as t
from portal.core.embedded.engine import CoreConnection, CoreEngine
from portal.core.embedded.rows import aware, from_row, inserted_id, utcnow

_K = t.widget_keys.c
_C = t.customers.c


def _key(row: Any) -> WidgetKey:
    return from_row(WidgetKey, row, created_at=aware(row.created_at))


class WidgetIdentity:
    """Tenants' signing keys, and customers by external id; for `EmbeddedCustomers`."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ keys
    async def list_widget_keys(self, tenant_id: int) -> list[WidgetKey]:
        query = sa.select(t.widget_keys).where(_K.tenant_id == tenant_id).order_by(_K.id)
        async with self.engine.connect() as conn:
            return [_key(row) for row in (await conn.execute(query)).all()]

    async def add_widget_key(
        self, tenant_id: int, kid: str, alg: str, secret: str | None, public_key: str | None
    ) -> WidgetKey:
        if alg not in WIDGET_KEY_ALGORITHMS:
            raise ValueError(f"alg must be one of {', '.join(WIDGET_KEY_ALGORITHMS)}, not {alg!r}")
        # A secret key with a public key's algorithm (or the reverse) would let anyone who knows
        # the public key sign tokens: each algorithm takes exactly its own kind of key.
        if (alg == "HS256") != bool(secret) or (alg == "HS256") == bool(public_key):
            raise ValueError("HS256 keys need a secret only; ES256 and EdDSA a public key only")
        if not kid or len(kid) > 64:
            raise ValueError("kid must be 1 to 64 characters")
        async with self.engine.begin() as conn:
            try:
                result = await conn.execute(
                    t.widget_keys.insert().values(
                        tenant_id=tenant_id,
                        kid=kid,
                        alg=alg,
                        secret=secret or None,
                        public_key=public_key or None,
                        created_at=utcnow(),
                    )
                )
            except IntegrityError as exc:
                raise Conflict(f"the kid {kid!r} is taken") from exc
            row = (
                await conn.execute(sa.select(t.widget_keys).where(_K.id == inserted_id(result)))
            ).one()
        return _key(row)

    async def delete_widget_key(self, tenant_id: int, key_id: int) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.widget_keys.delete().where(_K.tenant_id == tenant_id).where(_K.id == key_id)
            )
        if result.rowcount == 0:
            raise NotFound("no such widget key")

    # ------------------------------------------------------------------ customers
    async def identified_customer_id(
        self, tenant_id: int, external_id: str, email: str | None, name: str
    ) -> int:
        """The customer the company's token names (found, linked or made, kept up to date).

        NotFound: nobody has this external id and the token has no email to make them with.
        Conflict: the email belongs to a customer the company identified by another external id
        (signing in as them would hand over someone else's tickets)."""
        email = email.strip().lower() if email else None
        for _attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    customer_id = await self._identify(conn, tenant_id, external_id, email, name)
                break
            except IntegrityError:
                continue  # made or linked concurrently: the next round finds it
        else:
            raise Conflict("could not store the customer; try again")
        return customer_id

    async def _identify(
        self,
        conn: CoreConnection,
        tenant_id: int,
        external_id: str,
        email: str | None,
        name: str,
    ) -> int:
        mine = sa.select(t.customers).where(_C.tenant_id == tenant_id)
        row = (await conn.execute(mine.where(_C.external_id == external_id))).first()
        holder = None
        if email is not None and (row is None or row.email != email):
            holder = (await conn.execute(mine.where(_C.email == email))).first()
        if row is None and holder is None:
            if email is None:
                raise NotFound("no customer has this external id, and no email came with it")
            result = await conn.execute(
                t.customers.insert().values(
                    tenant_id=tenant_id,
                    email=email,
                    name=name,
                    external_id=external_id,
                    email_verified_at=utcnow(),
                    created_at=utcnow(),
                )
            )
            return inserted_id(result)
        if row is None:
            assert holder is not None
            if holder.external_id is not None:
                raise Conflict("this email belongs to a customer with another external id")
            row = holder
        changes: dict[str, Any] = {"external_id": external_id}
        if name and name != row.name:
            changes["name"] = name
        if email is not None and email != row.email and holder is None:
            # A new address the company vouches for; one another customer holds stays theirs.
            changes.update(email=email, email_verified_at=utcnow())
        elif email == row.email and row.email_verified_at is None:
            changes["email_verified_at"] = utcnow()
        await conn.execute(t.customers.update().where(_C.id == row.id).values(**changes))
        return row.id
