"""Signed links in mail to customers: magic sign-in links, their codes, and rating links.

Magic link
    `/portal/sign-in/{token}` with `signer.dumps("magic-link", {"t", "e", "j", "m", "n"})`: the
    tenant id, the email, a random token id, the lifetime in minutes and the page to land on. The
    lifetime is signed into the token (15 minutes for a sign-in, tenant setting
    `magic_link_minutes`; 3 days for the link in a notification mail, tenant setting
    `notification_link_hours`) and checked with itsdangerous' `max_age`. The token id is spent
    with `core.customers.spend_token` when the link is used, so it works once.

Sign-in code
    The sign-in mail also carries a short code, an HMAC of the token id, for people who read the
    mail on another device or who started inside an iframe on the company's site (where the link,
    opened in a new tab, would sign in that tab and not the iframe). The code is only accepted
    with the `portal_signin` cookie of the browser that asked for it, which names the token id;
    the cookie alone is worth nothing, and entering the code spends the same token id as the link.

Rating link
    `/portal/rate/{token}` with `signer.dumps("rating-link", {"t", "k", "g"})`: tenant, ticket
    and the pre-selected answer; valid for 30 days, usable without a session, as often as the
    core accepts a change of the rating.

A sign-in link points at the host the customer asked on when that host is the tenant's own
(its `{slug}.{base_domain}` or a verified custom domain: `urls.request_tenant_url`), so the
session cookie lands where the customer is; links in mail sent outside a request point at the
canonical host (the first verified custom domain, else `{slug}.{base_domain}`). Never at a
Host the client made up: a link built from it could send a victim to an attacker's host.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from portal.core.contract import Tenant
from portal.security import Signer

SIGN_IN_MINUTES = 15
NOTIFICATION_LINK_HOURS = 72
MAX_LINK_MINUTES = 30 * 24 * 60
RATING_LINK_MAX_AGE = 30 * 24 * 3600
PENDING_SALT = "portal.customer-pending"
CODE_LENGTH = 8


@dataclass(frozen=True)
class MagicLink:
    tenant_id: int
    email: str
    token_id: str
    minutes: int
    next: str

    @property
    def expires_at(self) -> datetime:
        """An upper bound of the link's expiry: how long the spent token id must be kept."""
        return datetime.now(UTC) + timedelta(minutes=self.minutes)


def sign_in_minutes(tenant: Tenant) -> int:
    try:
        minutes = int(tenant.settings.get("magic_link_minutes", SIGN_IN_MINUTES))
    except (TypeError, ValueError):
        minutes = SIGN_IN_MINUTES
    return max(1, min(minutes, MAX_LINK_MINUTES))


def notification_link_minutes(tenant: Tenant) -> int:
    try:
        hours = int(tenant.settings.get("notification_link_hours", NOTIFICATION_LINK_HOURS))
    except (TypeError, ValueError):
        hours = NOTIFICATION_LINK_HOURS
    return max(1, min(hours * 60, MAX_LINK_MINUTES))


def magic_payload(
    tenant_id: int, email: str, token_id: str, minutes: int, next_path: str = ""
) -> dict[str, Any]:
    return {"t": tenant_id, "e": email, "j": token_id, "m": minutes, "n": next_path}


def make_magic_link(
    signer: Signer, tenant: Tenant, email: str, *, minutes: int, next_path: str = ""
) -> tuple[str, str]:
    """(token, token id) of a new magic link for `email`."""
    token_id = secrets.token_urlsafe(24)
    payload = magic_payload(tenant.id, email.strip().lower(), token_id, minutes, next_path)
    return signer.dumps("magic-link", payload), token_id


def read_magic_link(signer: Signer, token: str, tenant_id: int) -> MagicLink | None:
    """The link if the token is genuine, for this tenant and not expired; else None."""
    if len(token) > 2000:
        return None
    data = signer.loads("magic-link", token)  # the signature first, to trust the lifetime
    if not isinstance(data, dict) or data.get("t") != tenant_id:
        return None
    minutes, email, token_id = data.get("m"), data.get("e"), data.get("j")
    if not isinstance(minutes, int) or not 0 < minutes <= MAX_LINK_MINUTES:
        return None
    if not isinstance(email, str) or not isinstance(token_id, str) or not token_id:
        return None
    if signer.loads("magic-link", token, max_age=minutes * 60) is None:
        return None  # expired
    next_path = data.get("n")
    if not isinstance(next_path, str):
        next_path = ""
    return MagicLink(tenant_id, email, token_id, minutes, next_path)


def sign_in_code(secret_key: str, token_id: str) -> str:
    """The code a person can type instead of following the link: 8 letters and digits."""
    digest = hmac.new(secret_key.encode(), b"portal.sign-in-code:" + token_id.encode(), "sha256")
    code = base64.b32encode(digest.digest()).decode()[:CODE_LENGTH]
    return f"{code[:4]}-{code[4:]}"


def code_matches(secret_key: str, token_id: str, typed: str) -> bool:
    wanted = sign_in_code(secret_key, token_id).replace("-", "")
    cleaned = "".join(ch for ch in typed.upper() if ch.isalnum())
    return hmac.compare_digest(cleaned.encode(), wanted.encode())


def _pending_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=PENDING_SALT)


def pending_token(secret_key: str, link: MagicLink) -> str:
    """The `portal_signin` cookie: which sign-in this browser asked for (not a credential)."""
    return _pending_serializer(secret_key).dumps(
        magic_payload(link.tenant_id, link.email, link.token_id, link.minutes, link.next)
    )


def read_pending(secret_key: str, token: str, tenant_id: int) -> MagicLink | None:
    try:
        data = _pending_serializer(secret_key).loads(token, max_age=MAX_LINK_MINUTES * 60)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != tenant_id:
        return None
    minutes = data.get("m")
    if not isinstance(minutes, int) or not 0 < minutes <= MAX_LINK_MINUTES:
        return None
    try:
        _pending_serializer(secret_key).loads(token, max_age=minutes * 60)
    except BadSignature:
        return None
    return MagicLink(tenant_id, str(data.get("e")), str(data.get("j")), minutes, str(data["n"]))


def make_rating_link(signer: Signer, tenant_id: int, ticket_id: int, good: bool) -> str:
    return signer.dumps("rating-link", {"t": tenant_id, "k": ticket_id, "g": good})


def read_rating_link(signer: Signer, token: str, tenant_id: int) -> tuple[int, bool] | None:
    """(ticket id, pre-selected answer), or None for a forged, foreign or expired token."""
    if len(token) > 2000:
        return None
    data = signer.loads("rating-link", token, max_age=RATING_LINK_MAX_AGE)
    if not isinstance(data, dict) or data.get("t") != tenant_id:
        return None
    ticket_id, good = data.get("k"), data.get("g")
    if not isinstance(ticket_id, int) or not isinstance(good, bool):
        return None
    return ticket_id, good
