"""Customers and their organizations, how they sign in, and who the widget says they are.

Sign-in sessions: a retried create with the same id stores nothing new. Widget identity: the keys
that sign a tenant's identity tokens (a taken kid is a Conflict), and the customer a verified
token names (found by external id, else the one with that email and no external id yet, else a
new one; the email counts as verified). Spent tokens make signed links single-use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Organization:
    id: int
    tenant_id: int
    name: str
    domain: str = ""


@dataclass(frozen=True)
class Customer:
    id: int
    tenant_id: int
    email: str
    name: str = ""
    organization_id: int | None = None
    # When the customer first proved the address (followed a magic link, or typed its code);
    # None: never, so agents see the address as unverified.
    email_verified_at: datetime | None = None
    # The company's own id for this user, set by a signed widget identity; unique per tenant.
    external_id: str | None = None


SESSION_KINDS = ("agent", "customer")


@dataclass(frozen=True)
class Session:
    """A sign-in session kept by the core; the browser's cookie holds a token naming it."""

    id: str  # SHA-256 hex of the cookie's random token: the token itself is never stored
    tenant_id: int
    kind: str  # one of SESSION_KINDS
    subject_id: int  # the agent's or the customer's id
    expires_at: datetime
    created_at: datetime


WIDGET_KEY_ALGORITHMS = ("HS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class WidgetKey:
    """A key that may sign a tenant's widget identity tokens (JWT), named by the token's `kid`.

    HS256 keys hold a `secret` we made and showed once; ES256 and EdDSA keys hold the company's
    `public_key` (PEM), so it signs without sharing a secret with us."""

    id: int
    tenant_id: int
    kid: str
    alg: str  # one of WIDGET_KEY_ALGORITHMS
    created_at: datetime
    secret: str | None = None
    public_key: str | None = None


@runtime_checkable
class CustomersDomain(Protocol):
    """`core.customers`: customers, organizations, sessions, spent tokens, widget identity."""

    async def ensure_customer(self, tenant_id: int, email: str, name: str = "") -> Customer: ...
    async def find_customer(self, tenant_id: int, email: str) -> Customer: ...
    async def get_customer(self, tenant_id: int, customer_id: int) -> Customer: ...
    async def create_organization(
        self, tenant_id: int, name: str, domain: str = ""
    ) -> Organization: ...
    async def set_customer_organization(
        self, tenant_id: int, customer_id: int, organization_id: int | None
    ) -> Customer: ...

    async def spend_token(self, token_id: str, expires_at: datetime) -> bool: ...

    async def create_session(
        self, tenant_id: int, kind: str, subject_id: int, session_id: str, expires_at: datetime
    ) -> Session: ...
    async def get_session(self, tenant_id: int, session_id: str) -> Session | None: ...
    async def end_session(self, tenant_id: int, session_id: str) -> None: ...
    async def end_sessions(self, tenant_id: int, kind: str, subject_id: int) -> int: ...
    async def verify_customer_email(self, tenant_id: int, customer_id: int) -> None: ...

    async def list_widget_keys(self, tenant_id: int) -> list[WidgetKey]: ...
    async def add_widget_key(
        self, tenant_id: int, kid: str, alg: str, secret: str | None, public_key: str | None
    ) -> WidgetKey: ...
    async def delete_widget_key(self, tenant_id: int, key_id: int) -> None: ...
    async def identified_customer(
        self, tenant_id: int, external_id: str, email: str | None, name: str
    ) -> Customer: ...
