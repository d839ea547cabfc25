"""Making a tenant and its first admin: the rules `portal create-tenant` and `/_platform/tenants`
share, and the one-time welcome link that lets the admin choose a password.

No password travels on a command line or through the operator's API: the first admin gets a
link (`/admin/welcome/{token}`), valid WELCOME_DAYS and usable once, where they choose one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from portal.core.contract import Agent, Conflict, HelpdeskCore, Tenant
from portal.emails import clean_email
from portal.mail import unsafe_name_characters
from portal.security import Signer
from portal.settings import Settings
from portal.urls import tenant_url

# A slug is the tenant's subdomain (`{slug}.{base_domain}`): one DNS label, lower case.
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
# Subdomains an operator's own services or a phisher would want.
RESERVED_SLUGS = frozenset(
    "admin api app assets auth billing blog cdn help id login mail platform portal smtp "
    "static status support www".split()
)
MAX_NAME = 200
WELCOME_DAYS = 7
WELCOME_MAX_AGE = WELCOME_DAYS * 24 * 3600
WELCOME_PATH = "/admin/welcome/"


@dataclass(frozen=True)
class NewTenant:
    slug: str
    name: str
    admin_email: str


@dataclass(frozen=True)
class Provisioned:
    tenant: Tenant
    admin: Agent
    welcome_url: str


class Refused(ValueError):
    """The request cannot make a tenant; `errors` names each field's problem, `taken` says the
    slug is another tenant's (a conflict rather than a bad value)."""

    def __init__(self, errors: dict[str, str], *, taken: bool = False) -> None:
        super().__init__("; ".join(f"{field}: {error}" for field, error in errors.items()))
        self.errors = errors
        self.taken = taken


def checked(slug: str, name: str, admin_email: str) -> NewTenant:
    """The request cleaned, or Refused saying what is wrong with each field."""
    errors: dict[str, str] = {}
    slug, name = slug.strip(), name.strip()
    if not SLUG_RE.fullmatch(slug):
        errors["slug"] = (
            "Use 1 to 40 lower-case letters, digits and hyphens, starting and ending with a "
            f"letter or digit (it becomes the address {slug or 'SLUG'}.<base domain>)."
        )
    elif slug in RESERVED_SLUGS:
        errors["slug"] = f"{slug!r} is reserved; choose another."
    if not name or len(name) > MAX_NAME:
        errors["name"] = f"Give a name of 1 to {MAX_NAME} characters."
    elif unsafe := unsafe_name_characters(name):
        shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in unsafe)
        errors["name"] = f"These characters are not allowed in the name: {shown}"
    email = clean_email(admin_email)
    if email is None:
        errors["admin_email"] = f"{admin_email.strip()!r} is not an email address."
    if errors:
        raise Refused(errors)
    assert email is not None
    return NewTenant(slug, name, email)


async def provision(
    core: HelpdeskCore, settings: Settings, signer: Signer, request: NewTenant
) -> Provisioned:
    """The tenant and its first admin (no password yet), and the admin's welcome link.

    Raises Refused when the slug is taken.
    """
    try:
        tenant = await core.tenants.create_tenant(request.slug, request.name)
    except Conflict as exc:
        raise Refused({"slug": f"{request.slug!r} is taken; choose another."}, taken=True) from exc
    # No password: an empty hash matches none, so the welcome link is the only way in.
    admin = await core.tenants.create_agent(
        tenant.id, request.admin_email, request.name, "", role="admin"
    )
    return Provisioned(tenant, admin, welcome_url(settings, signer, tenant, admin))


def welcome_url(settings: Settings, signer: Signer, tenant: Tenant, agent: Agent) -> str:
    """A one-time link on the tenant's canonical host where `agent` chooses a password."""
    payload = {"t": tenant.id, "a": agent.id, "n": secrets.token_urlsafe(16)}
    return tenant_url(settings, tenant, WELCOME_PATH + signer.dumps("agent-welcome", payload))


@dataclass(frozen=True)
class Welcome:
    tenant_id: int
    agent_id: int
    token_id: str

    @property
    def expires_at(self) -> datetime:
        """How long the spent token id must be kept: as long as the link could be used."""
        return datetime.now(UTC) + timedelta(seconds=WELCOME_MAX_AGE)


def read_welcome(signer: Signer, token: str) -> Welcome | None:
    """The welcome link's content, or None when forged or older than WELCOME_DAYS."""
    data: Any = signer.loads("agent-welcome", token, max_age=WELCOME_MAX_AGE)
    if not isinstance(data, dict):
        return None
    tenant_id, agent_id, nonce = data.get("t"), data.get("a"), data.get("n")
    if not (isinstance(tenant_id, int) and isinstance(agent_id, int) and isinstance(nonce, str)):
        return None
    return Welcome(tenant_id, agent_id, "welcome:" + nonce)


def tenant_hosts(settings: Settings, tenant: Tenant) -> list[str]:
    """Where the tenant is served: its subdomain of the base domain, then its own domains."""
    return [f"{tenant.slug}.{settings.base_domain}", *tenant.domains]
