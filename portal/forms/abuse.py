"""Spam and abuse: the honeypot field and the per-IP and per-tenant submission rate limits.

Limits are per minute and can be changed per tenant with the tenant settings
`form_ip_limit_per_minute` and `form_tenant_limit_per_minute`. The RateLimiter instances live on
the app (`app.state`), so separate apps (tests, benchmarks) never share counts; like the login
throttle they count per process.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from portal.core.contract import Tenant
from portal.ratelimit import RateLimiter

# A text input hidden from people (CSS, aria-hidden, tabindex=-1) that bots fill in. The name is
# one browsers do not autofill.
HONEYPOT = "hp_leave_empty"

DEFAULT_IP_LIMIT = 10  # submissions per minute from one address to one tenant
DEFAULT_TENANT_LIMIT = 300  # submissions per minute to one tenant
WINDOW = 60.0


def _setting(tenant: Tenant, key: str, default: int) -> int:
    try:
        value = int(tenant.settings.get(key, default))
    except (TypeError, ValueError):
        return default
    return value if value > 0 else default


def _limiter(request: Request, limit: int) -> RateLimiter:
    state: Any = request.app.state
    limiters: dict[int, RateLimiter] | None = getattr(state, "forms_limiters", None)
    if limiters is None:
        limiters = {}
        state.forms_limiters = limiters
    limiter = limiters.get(limit)
    if limiter is None:
        limiter = limiters[limit] = RateLimiter(limit, WINDOW)
    return limiter


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def submission_wait(request: Request) -> float:
    """Count a submission; 0 when allowed, else the seconds until the next one is."""
    tenant: Tenant = request.state.tenant
    ip_limit = _setting(tenant, "form_ip_limit_per_minute", DEFAULT_IP_LIMIT)
    tenant_limit = _setting(tenant, "form_tenant_limit_per_minute", DEFAULT_TENANT_LIMIT)
    wait = _limiter(request, ip_limit).hit(f"ip:{tenant.id}:{client_ip(request)}")
    if wait:
        return wait  # a blocked address does not use up the tenant's allowance
    return _limiter(request, tenant_limit).hit(f"tenant:{tenant.id}")


def honeypot_filled(data: dict[str, list[str]]) -> bool:
    return any(v.strip() for v in data.get(HONEYPOT, ()))
