"""The embedded core's tenants domain: tenants, their domains, branding, settings and agents."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import Agent, Conflict, Event, NotFound, Tenant
from portal.core.embedded import schema as t
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import CoreConnection
from portal.core.embedded.rows import from_row, inserted_id, utcnow


class EmbeddedTenants(EmbeddedDomain):
    """`core.tenants` of the embedded core."""

    # ----------------------------------------------------------------- tenants
    async def _tenant_from_row(self, conn: CoreConnection, row: Any) -> Tenant:
        domains = (
            await conn.execute(
                sa.select(t.tenant_domains.c.domain)
                .where(t.tenant_domains.c.tenant_id == row.id)
                .order_by(t.tenant_domains.c.id)
            )
        ).scalars()
        return Tenant(
            id=row.id,
            slug=row.slug,
            name=row.name,
            logo_url=row.logo_url,
            primary_color=row.primary_color,
            default_locale=row.default_locale,
            domains=tuple(domains),
            settings=dict(row.settings or {}),
        )

    async def create_tenant(self, slug: str, name: str, *, domains: tuple[str, ...] = ()) -> Tenant:
        async with self.engine.begin() as conn:
            try:
                result = await conn.execute(
                    t.tenants.insert().values(
                        slug=slug,
                        name=name,
                        logo_url="",
                        primary_color="#1f6feb",
                        default_locale="en",
                        settings={},
                        kb_revision=0,
                        created_at=utcnow(),
                    )
                )
                tenant_id = inserted_id(result)
                for domain in domains:
                    await conn.execute(
                        t.tenant_domains.insert().values(
                            tenant_id=tenant_id,
                            domain=domain.lower(),
                            verified=True,
                            created_at=utcnow(),
                        )
                    )
            except IntegrityError as exc:
                raise Conflict(f"tenant {slug!r} or one of its domains exists already") from exc
        # Hosts that named no tenant until now are kept as such for a while: drop them.
        self._bus.publish(Event("tenant.changed", tenant_id, {"slug": slug}))
        return await self.get_tenant(slug)

    async def get_tenant(self, slug: str) -> Tenant:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.tenants).where(t.tenants.c.slug == slug))).first()
            if row is None:
                raise NotFound(f"no tenant {slug!r}")
            return await self._tenant_from_row(conn, row)

    async def get_tenant_by_domain(self, domain: str) -> Tenant:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tenants)
                    .join(t.tenant_domains, t.tenant_domains.c.tenant_id == t.tenants.c.id)
                    .where(t.tenant_domains.c.domain == domain.lower())
                    .where(t.tenant_domains.c.verified.is_(True))
                )
            ).first()
            if row is None:
                raise NotFound(f"no tenant for domain {domain!r}")
            return await self._tenant_from_row(conn, row)

    async def list_tenants(self) -> list[Tenant]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.tenants).order_by(t.tenants.c.id))).all()
            return [await self._tenant_from_row(conn, row) for row in rows]

    async def update_branding(
        self, tenant_id: int, *, name: str, logo_url: str, primary_color: str
    ) -> Tenant:
        async with self.engine.begin() as conn:
            await conn.execute(
                t.tenants.update()
                .where(t.tenants.c.id == tenant_id)
                .values(name=name, logo_url=logo_url, primary_color=primary_color)
            )
            row = (
                await conn.execute(sa.select(t.tenants).where(t.tenants.c.id == tenant_id))
            ).one()
            tenant = await self._tenant_from_row(conn, row)
        self._bus.publish(Event("tenant.changed", tenant_id, {"slug": tenant.slug}))
        return tenant

    async def add_domain(self, tenant_id: int, domain: str) -> None:
        async with self.engine.begin() as conn:
            try:
                await conn.execute(
                    t.tenant_domains.insert().values(
                        tenant_id=tenant_id,
                        domain=domain.lower(),
                        verified=True,
                        created_at=utcnow(),
                    )
                )
            except IntegrityError as exc:
                raise Conflict(f"domain {domain!r} belongs to a tenant already") from exc
        self._bus.publish(Event("tenant.changed", tenant_id, {"domain": domain.lower()}))

    async def update_tenant_settings(self, tenant_id: int, changes: dict[str, Any]) -> Tenant:
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(t.tenants.c.slug, t.tenants.c.settings).where(
                        t.tenants.c.id == tenant_id
                    )
                )
            ).one()
            merged = {**(row.settings or {}), **changes}
            await conn.execute(
                t.tenants.update().where(t.tenants.c.id == tenant_id).values(settings=merged)
            )
        self._bus.publish(Event("tenant.changed", tenant_id, {"slug": row.slug}))
        return await self.get_tenant(row.slug)

    # ------------------------------------------------------------------ agents
    @staticmethod
    def _agent(row: Any) -> Agent:
        return from_row(Agent, row)

    async def create_agent(
        self, tenant_id: int, email: str, name: str, password_hash: str, role: str = "agent"
    ) -> Agent:
        async with self.engine.begin() as conn:
            try:
                result = await conn.execute(
                    t.agents.insert().values(
                        tenant_id=tenant_id,
                        email=email.lower(),
                        name=name,
                        password_hash=password_hash,
                        role=role,
                        presence="offline",
                        created_at=utcnow(),
                    )
                )
            except IntegrityError as exc:
                raise Conflict(f"an agent with email {email!r} exists already") from exc
        return await self.get_agent(tenant_id, inserted_id(result))

    async def set_agent_password(self, tenant_id: int, agent_id: int, password_hash: str) -> None:
        a = t.agents.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.agents.update()
                .where((a.tenant_id == tenant_id) & (a.id == agent_id))
                .values(password_hash=password_hash)
            )
        if result.rowcount == 0:
            raise NotFound(f"agent {agent_id} not found")

    async def get_agent_by_email(self, tenant_id: int, email: str) -> Agent:
        return await self._one_agent(
            (t.agents.c.tenant_id == tenant_id) & (t.agents.c.email == email.lower())
        )

    async def get_agent(self, tenant_id: int, agent_id: int) -> Agent:
        return await self._one_agent(
            (t.agents.c.tenant_id == tenant_id) & (t.agents.c.id == agent_id)
        )

    async def _one_agent(self, where: Any) -> Agent:
        return await self._one(t.agents, where, self._agent, "no such agent")

    async def list_agents(self, tenant_id: int) -> list[Agent]:
        a = t.agents.c
        query = sa.select(t.agents).where(a.tenant_id == tenant_id).order_by(a.name)
        async with self.engine.connect() as conn:
            return [from_row(Agent, row) for row in await conn.execute(query)]
