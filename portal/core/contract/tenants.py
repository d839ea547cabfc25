"""Tenants (help desk accounts), their branding and settings, and their agents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Branding:
    name: str
    logo_url: str = ""
    primary_color: str = "#1f6feb"


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str
    logo_url: str = ""
    primary_color: str = "#1f6feb"
    default_locale: str = "en"
    domains: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def branding(self) -> Branding:
        return Branding(self.name, self.logo_url, self.primary_color)


@dataclass(frozen=True)
class Agent:
    id: int
    tenant_id: int
    email: str
    name: str
    role: str = "agent"  # "agent" or "admin"
    password_hash: str = ""


@runtime_checkable
class TenantsDomain(Protocol):
    """`core.tenants`: tenants by slug or domain, their branding and settings, their agents."""

    async def create_tenant(
        self, slug: str, name: str, *, domains: tuple[str, ...] = ()
    ) -> Tenant: ...
    async def get_tenant(self, slug: str) -> Tenant: ...
    async def get_tenant_by_domain(self, domain: str) -> Tenant: ...
    async def list_tenants(self) -> list[Tenant]: ...
    async def update_branding(
        self, tenant_id: int, *, name: str, logo_url: str, primary_color: str
    ) -> Tenant: ...
    async def add_domain(self, tenant_id: int, domain: str) -> None: ...
    async def update_tenant_settings(self, tenant_id: int, changes: dict[str, Any]) -> Tenant: ...

    async def create_agent(
        self, tenant_id: int, email: str, name: str, password_hash: str, role: str = "agent"
    ) -> Agent: ...
    async def set_agent_password(self, tenant_id: int, agent_id: int, password_hash: str) -> None:
        """Raises NotFound when the tenant has no such agent."""

    async def get_agent_by_email(self, tenant_id: int, email: str) -> Agent: ...
    async def get_agent(self, tenant_id: int, agent_id: int) -> Agent: ...
    async def list_agents(self, tenant_id: int) -> list[Agent]: ...
