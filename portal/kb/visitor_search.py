"""A visitor's search, as the search page and the type-ahead share it.

The query's length limit, the tenant's hits, and the record of searches that found nothing, which
is rate limited (`portal.ratelimit`): at most MISSED_SEARCHES_PER_ADDRESS an hour are recorded (the
search still answers), so strangers' text cannot flood the admin's list.
"""

from __future__ import annotations

from starlette.requests import Request

from portal.kb.index import SearchHit
from portal.ratelimit import MISSED_SEARCHES_PER_ADDRESS, MISSED_SEARCHES_PER_TENANT, client_ip
from portal.request_helpers import tenant_of
from portal.services import services

MAX_QUERY_LENGTH = 200


def search_hits(request: Request, query: str, lang: str | None, limit: int) -> list[SearchHit]:
    """The tenant's best `limit` articles for `query`, in `lang` only unless it is None."""
    return services(request).search.search(tenant_of(request).id, query, language=lang, limit=limit)


async def record_missed_search(request: Request, query: str, lang: str) -> None:
    """Record a search that found nothing, unless this address (or everyone) recorded plenty:
    strangers' text must not flood the admin's list."""
    tenant = tenant_of(request)
    checks = (MISSED_SEARCHES_PER_ADDRESS, client_ip(request)), (MISSED_SEARCHES_PER_TENANT, "")
    if services(request).rate_limits.check(tenant, *checks) is None:
        await services(request).core.kb.record_missed_search(tenant.id, query, lang)
