"""The embedded core's tenants domain: tenants, their domains, branding, settings and agents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from portal.core.contract import Agent, Conflict, Event, NotFound, Tenant
from portal.core.contract.tenants import DOMAIN_STATUSES, Domain, DomainStatus
from portal.core.embedded import schema as t
from portal.core.embedded.domain import EmbeddedDomain
from portal.core.embedded.engine import CoreConnection
from portal.core.embedded.rows import aware, from_row, inserted_id, utcnow

_SERVED = t.tenant_domains.c.status == "verified"


class EmbeddedTenants(EmbeddedDomain):
    """`core.tenants` of the embedded core."""

    # ----------------------------------------------------------------- tenants
    async def _tenant_from_row(self, conn: CoreConnection, row: Any) -> Tenant:
        domains = (
            await conn.execute(
                sa.select(t.tenant_domains.c.domain)
                .where((t.tenant_domains.c.tenant_id == row.id) & _SERVED)
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
                for domain in domains:  # the operator's word: served as they are
                    await conn.execute(_domain_row(tenant_id, domain, verified=True))
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
                    .where(_SERVED)
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

    # ----------------------------------------------------------------- domains
    async def add_domain(self, tenant_id: int, domain: str, *, verified: bool = True) -> Domain:
        async with self.engine.begin() as conn:
            try:
                result = await conn.execute(_domain_row(tenant_id, domain, verified=verified))
            except IntegrityError as exc:
                raise Conflict(f"domain {domain!r} belongs to a tenant already") from exc
        self._bus.publish(Event("tenant.changed", tenant_id, {"domain": domain.lower()}))
        where = t.tenant_domains.c.id == inserted_id(result)
        return await self._one(t.tenant_domains, where, _domain, "no such domain")

    async def list_domains(self, tenant_id: int) -> list[Domain]:
        d = t.tenant_domains.c
        query = sa.select(t.tenant_domains).where(d.tenant_id == tenant_id).order_by(d.id)
        async with self.engine.connect() as conn:
            return [_domain(row) for row in await conn.execute(query)]

    async def set_domain_status(
        self, tenant_id: int, domain: str, status: DomainStatus, reason: str = "", detail: str = ""
    ) -> Domain:
        if status not in DOMAIN_STATUSES:
            raise ValueError(f"unknown domain status {status!r}")
        d = t.tenant_domains.c
        where = (d.tenant_id == tenant_id) & (d.domain == domain.lower())
        async with self.engine.begin() as conn:
            before = (await conn.execute(sa.select(d.status).where(where))).scalar()
            if before is None:
                raise NotFound(f"no domain {domain!r}")
            await conn.execute(
                t.tenant_domains.update()
                .where(where)
                .values(status=status, reason=reason, detail=detail[:1000], checked_at=utcnow())
            )
            row = (await conn.execute(sa.select(t.tenant_domains).where(where))).one()
        if before != status:  # served from now on, or not any more: every process must know
            self._bus.publish(Event("tenant.changed", tenant_id, {"domain": domain.lower()}))
        return _domain(row)

    async def remove_domain(self, tenant_id: int, domain: str) -> None:
        d = t.tenant_domains.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                t.tenant_domains.delete().where(
                    (d.tenant_id == tenant_id) & (d.domain == domain.lower())
                )
            )
        if result.rowcount == 0:
            raise NotFound(f"no domain {domain!r}")
        self._bus.publish(Event("tenant.changed", tenant_id, {"domain": domain.lower()}))

    async def claim_domains_to_check(self, checked_before: datetime, limit: int) -> list[Domain]:
        d = t.tenant_domains.c
        due = d.dns_checked.is_(True) & (d.checked_at.is_(None) | (d.checked_at < checked_before))
        claimed: list[Domain] = []
        async with self.engine.begin() as conn:
            ids = (
                await conn.execute(
                    sa.select(d.id).where(due).order_by(d.checked_at.nulls_first()).limit(limit)
                )
            ).scalars()
            for domain_id in list(ids):
                # The same condition again, row by row: a process that claimed it in between
                # has moved its checked_at on, so this one updates nothing and leaves it.
                now = utcnow()
                result = await conn.execute(
                    t.tenant_domains.update()
                    .where((d.id == domain_id) & due)
                    .values(checked_at=now)
                )
                if result.rowcount == 1:
                    row = (
                        await conn.execute(sa.select(t.tenant_domains).where(d.id == domain_id))
                    ).one()
                    claimed.append(_domain(row))
        return claimed

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


def _domain_row(tenant_id: int, domain: str, *, verified: bool) -> Any:
    return t.tenant_domains.insert().values(
        tenant_id=tenant_id,
        domain=domain.lower(),
        status="verified" if verified else "pending",
        reason="",
        detail="",
        dns_checked=not verified,  # the operator's domains are never re-checked
        created_at=utcnow(),
    )


def _domain(row: Any) -> Domain:
    checked = row.checked_at
    return from_row(
        Domain,
        row,
        dns_checked=bool(row.dns_checked),
        checked_at=aware(checked) if checked is not None else None,
        created_at=aware(row.created_at),
    )
