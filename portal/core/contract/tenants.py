"""Tenants (help desk accounts), their branding and settings, and their agents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

# A custom domain's state: waiting for its first good DNS check, served, or not served (again).
DomainStatus = Literal["pending", "verified", "failed"]
DOMAIN_STATUSES: tuple[DomainStatus, ...] = ("pending", "verified", "failed")
# Why a check did not verify a domain (`Domain.reason`; `detail` carries what DNS said):
#   no_record     the name has no CNAME, A or AAAA record
#   wrong_target  it points elsewhere (detail: the CNAME target or the addresses)
#   caa           a CAA record lets only other CAs issue for it (detail: the allowed issuers)
#   lookup_error  DNS did not answer (detail: how); the status is left as it was
DOMAIN_REASONS = ("no_record", "wrong_target", "caa", "lookup_error")


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
    domains: tuple[str, ...] = ()  # verified custom domains only, the first is canonical
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def branding(self) -> Branding:
        return Branding(self.name, self.logo_url, self.primary_color)


@dataclass(frozen=True)
class Domain:
    """A tenant's custom domain and what its last DNS check found.

    `dns_checked` is False for domains an operator registered (`create_tenant(domains=...)`, the
    demo's `127.0.0.1`): they are served as they are and never re-checked. Domains an admin adds
    start `pending` and are served only while `verified`.
    """

    id: int
    tenant_id: int
    domain: str
    status: DomainStatus
    reason: str = ""  # one of DOMAIN_REASONS, or "" after a good check
    detail: str = ""
    checked_at: datetime | None = None
    dns_checked: bool = True
    created_at: datetime | None = None

    @property
    def verified(self) -> bool:
        return self.status == "verified"


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
    async def add_domain(self, tenant_id: int, domain: str, *, verified: bool = True) -> Domain:
        """Register a custom domain (lower-cased). `verified=True` is the operator's word: served
        at once and never re-checked; `verified=False` (the admin page) starts it `pending` for
        DNS checks. Raises Conflict when any tenant has it already. Publishes `tenant.changed`."""

    async def list_domains(self, tenant_id: int) -> list[Domain]:
        """The tenant's custom domains, in the order they were added."""

    async def set_domain_status(
        self, tenant_id: int, domain: str, status: DomainStatus, reason: str = "", detail: str = ""
    ) -> Domain:
        """Record a check's outcome (and `checked_at` = now). A changed status publishes
        `tenant.changed`, so every process serves, or stops serving, the domain at once.
        Raises NotFound when the tenant has no such domain."""

    async def remove_domain(self, tenant_id: int, domain: str) -> None:
        """Raises NotFound when the tenant has no such domain. Publishes `tenant.changed`."""

    async def claim_domains_to_check(self, checked_before: datetime, limit: int) -> list[Domain]:
        """Up to `limit` DNS-checked domains (any tenant) last checked before `checked_before`
        (or never), each marked checked now in the same statement that picks it: processes
        that ask at the same time get different domains, none is checked twice."""

    async def update_tenant_settings(self, tenant_id: int, changes: dict[str, Any]) -> Tenant: ...

    async def create_agent(
        self, tenant_id: int, email: str, name: str, password_hash: str, role: str = "agent"
    ) -> Agent: ...
    async def set_agent_password(self, tenant_id: int, agent_id: int, password_hash: str) -> None:
        """Raises NotFound when the tenant has no such agent."""

    async def get_agent_by_email(self, tenant_id: int, email: str) -> Agent: ...
    async def get_agent(self, tenant_id: int, agent_id: int) -> Agent: ...
    async def list_agents(self, tenant_id: int) -> list[Agent]: ...
