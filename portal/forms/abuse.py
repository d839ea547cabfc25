"""Spam and abuse: the honeypot field and the per-IP and per-tenant submission rate limits.

Limits are per minute and can be changed per tenant with the tenant settings
`form_ip_limit_per_minute` and `form_tenant_limit_per_minute`. They are the rules
`SUBMISSIONS_PER_ADDRESS` and `SUBMISSIONS_PER_TENANT` of `portal.ratelimit`, counted in the app's
registry, which chats that become tickets count against too (`submission_checks`).
"""

from __future__ import annotations

from starlette.requests import Request

from portal.ratelimit import SUBMISSIONS_PER_ADDRESS, SUBMISSIONS_PER_TENANT, Check, client_ip
from portal.request_helpers import tenant_of
from portal.services import services

# A text input hidden from people (CSS, aria-hidden, tabindex=-1) that bots fill in. The name is
# one browsers do not autofill.
HONEYPOT = "hp_leave_empty"

DEFAULT_IP_LIMIT = SUBMISSIONS_PER_ADDRESS.limit  # per minute from one address to one tenant
DEFAULT_TENANT_LIMIT = SUBMISSIONS_PER_TENANT.limit  # per minute to one tenant


def submission_checks(ip: str) -> tuple[Check, ...]:
    """What one submission (a form, or a chat that becomes a ticket) from `ip` counts against."""
    return ((SUBMISSIONS_PER_ADDRESS, ip), (SUBMISSIONS_PER_TENANT, ""))


def submission_wait(request: Request) -> float:
    """Count a submission; 0 when allowed, else the seconds until the next one is."""
    checks = submission_checks(client_ip(request))
    refused = services(request).rate_limits.check(tenant_of(request), *checks)
    return refused.wait if refused else 0.0


def honeypot_filled(data: dict[str, list[str]]) -> bool:
    return any(v.strip() for v in data.get(HONEYPOT, ()))
