"""The embedded core's customers domain: customers, organizations, proved addresses, spent
tokens, and (through `sessions.py` and `widget_keys.py`) sign-in sessions and widget identity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.bus import EventBus
from portal.core.contract import (
    Conflict,
    Customer,
    Event,
    NotFound,
    Organization,
    Session,
    WidgetKey,
)
from portal.core.embedded import schema as t
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import CoreEngine
from portal.core.embedded.rows import aware, from_row, inserted_id, require_in_tenant, utcnow
from portal.core.embedded.sessions import SignInSessions
from portal.core.embedded.widget_keys import WidgetIdentity

_CUSTOMER_BY_ID = sa.select(t.customers).where(
    t.customers.c.tenant_id == sa.bindparam("tenant_id"),
    t.customers.c.id == sa.bindparam("customer_id"),
)


class EmbeddedCustomers(EmbeddedDomain):
    """`core.customers` of the embedded core; tickets and chat find requesters through it too."""

    def __init__(self, engine: CoreEngine, bus: EventBus) -> None:
        super().__init__(engine, bus)
        self._sessions = SignInSessions(engine)
        self._identity = WidgetIdentity(engine)

    # ------------------------------------------------- customers and organizations
    @staticmethod
    def _customer(row: Any) -> Customer:
        verified = row.email_verified_at
        return from_row(Customer, row, email_verified_at=verified and aware(verified))

    async def ensure_customer(self, tenant_id: int, email: str, name: str = "") -> Customer:
        return await self.get_customer(
            tenant_id, await self.ensure_customer_id(tenant_id, email, name)
        )

    async def find_customer(self, tenant_id: int, email: str) -> Customer:
        c = t.customers.c
        where = (c.tenant_id == tenant_id) & (c.email == email.strip().lower())
        return await self._one(t.customers, where, self._customer, "no such customer")

    async def get_customer(self, tenant_id: int, customer_id: int) -> Customer:
        # Every signed-in portal page reads its customer: one statement object, reused.
        params = {"tenant_id": tenant_id, "customer_id": customer_id}
        async with self.engine.connect() as conn:
            row = (await conn.execute(_CUSTOMER_BY_ID, params)).first()
        if row is None:
            raise NotFound("no such customer")
        return self._customer(row)

    async def ensure_customer_id(self, tenant_id: int, email: str, name: str) -> int:
        """The customer with this email, created if new (in its own short transaction)."""
        c = t.customers.c
        email = email.strip().lower()
        query = sa.select(c.id, c.name).where(c.tenant_id == tenant_id).where(c.email == email)
        for _attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    row = (await conn.execute(query)).first()
                    if row is not None:
                        if name and not row.name:
                            await conn.execute(
                                t.customers.update().where(c.id == row.id).values(name=name)
                            )
                            self._changed(tenant_id, row.id)
                        return int(row.id)
                    result = await conn.execute(
                        t.customers.insert().values(
                            tenant_id=tenant_id, email=email, name=name, created_at=utcnow()
                        )
                    )
                    return inserted_id(result)
            except IntegrityError:
                continue  # created concurrently: the next round finds it
        raise Conflict("could not store the customer; try again")

    async def create_organization(
        self, tenant_id: int, name: str, domain: str = ""
    ) -> Organization:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.organizations.insert().values(
                    tenant_id=tenant_id, name=name, domain=domain.lower(), created_at=utcnow()
                )
            )
        return Organization(inserted_id(result), tenant_id, name, domain.lower())

    async def set_customer_organization(
        self, tenant_id: int, customer_id: int, organization_id: int | None
    ) -> Customer:
        async with self.engine.begin() as conn:
            await require_in_tenant(
                conn, t.organizations, tenant_id, organization_id, "no such organization"
            )
            await conn.execute(
                t.customers.update()
                .where(t.customers.c.id == customer_id)
                .where(t.customers.c.tenant_id == tenant_id)
                .values(organization_id=organization_id)
            )
        self._changed(tenant_id, customer_id)
        return await self.get_customer(tenant_id, customer_id)

    async def verify_customer_email(self, tenant_id: int, customer_id: int) -> None:
        """Record the first time a customer proved their address; later proofs change nothing."""
        c = t.customers.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.customers.update()
                .where(c.tenant_id == tenant_id)
                .where(c.id == customer_id)
                .where(c.email_verified_at.is_(None))
                .values(email_verified_at=utcnow())
            )
        if result.rowcount:
            self._changed(tenant_id, customer_id)

    # ----------------------------------------------------------- spent tokens
    async def spend_token(self, token_id: str, expires_at: datetime) -> bool:
        """True the first time a token id is spent, False ever after (until it expires)."""
        now = utcnow()
        u = t.used_tokens.c
        async with self.engine.begin() as conn:
            await conn.execute(t.used_tokens.delete().where(u.expires_at < now))
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    t.used_tokens.insert().values(token_id=token_id[:64], expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True

    # --------------------------------------------------------- sign-in sessions
    async def create_session(
        self, tenant_id: int, kind: str, subject_id: int, session_id: str, expires_at: datetime
    ) -> Session:
        return await self._sessions.create_session(
            tenant_id, kind, subject_id, session_id, expires_at
        )

    async def get_session(self, tenant_id: int, session_id: str) -> Session | None:
        return await self._sessions.get_session(tenant_id, session_id)

    async def end_session(self, tenant_id: int, session_id: str) -> None:
        await self._sessions.end_session(tenant_id, session_id)
        # Every process keeps the sessions it has read (`portal.sessions.cache`) until told.
        self._bus.publish(Event("session.ended", tenant_id, {"session_id": session_id}))

    async def end_sessions(self, tenant_id: int, kind: str, subject_id: int) -> int:
        ended = await self._sessions.end_sessions(tenant_id, kind, subject_id)
        data = {"kind": kind, "subject_id": subject_id}
        self._bus.publish(Event("sessions.ended", tenant_id, data))
        return ended

    # --------------------------------------------------------- widget identity
    async def list_widget_keys(self, tenant_id: int) -> list[WidgetKey]:
        return await self._identity.list_widget_keys(tenant_id)

    async def add_widget_key(
        self, tenant_id: int, kid: str, alg: str, secret: str | None, public_key: str | None
    ) -> WidgetKey:
        return await self._identity.add_widget_key(tenant_id, kid, alg, secret, public_key)

    async def delete_widget_key(self, tenant_id: int, key_id: int) -> None:
        await self._identity.delete_widget_key(tenant_id, key_id)

    async def identified_customer(
        self, tenant_id: int, external_id: str, email: str | None, name: str
    ) -> Customer:
        customer_id = await self._identity.identified_customer_id(
            tenant_id, external_id, email, name
        )
        # The company's word may have changed the name, address or external id.
        self._changed(tenant_id, customer_id)
        return await self.get_customer(tenant_id, customer_id)

    def _changed(self, tenant_id: int, customer_id: int) -> None:
        """Tell every process (caches of signed-in customers) that a customer changed."""
        self._bus.publish(Event("customer.changed", tenant_id, {"customer_id": customer_id}))
