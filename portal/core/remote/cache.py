"""Reads of a remote core that may be a little stale, kept briefly in the edge process.

Every page needs the tenant of its host, a help center page its categories and article, a form
page its form and departments: each a round trip to the core. These change rarely, and the core
says when they do, so `ReadCache` keeps their answers (NotFound included: a bot asking for made-up
slugs must not reach the core each time) for `ttl` seconds, at most `size` of them, and drops
them when an event says they changed:

- `tenant.changed`: the tenant (branding, settings, domains);
- `article.changed`, `category.changed`: the tenant's knowledge base reads;
- `form.changed`: the tenant's forms and departments;
- `events.resumed` (events may have gone unheard): everything.

A write through this edge drops its domain's reads of the tenant at once, so whoever made a
change reads it back; other edges hear of it by the event. Writes are never cached, nor any read
not listed in `CACHED`.

An answer past its `ttl` is still given while the core does not answer (stale if error): during
an outage the help center, the forms and the portal keep their tenant, pages and forms, and the
outbox takes the writes. What an event dropped is not kept for that.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from portal.core.api.operations import OPERATIONS
from portal.core.bus import EventBus
from portal.core.contract import EVENTS_RESUMED, Event, NotFound
from portal.core.remote.client import CoreUnavailable

TTL_S = 30.0
SIZE = 10_000

# (domain, method) of each read kept, by the group its events drop.
CACHED: dict[str, frozenset[str]] = {
    "tenants": frozenset({"get_tenant", "get_tenant_by_domain"}),
    "kb": frozenset(
        {
            "list_categories",
            "get_category",
            "get_category_by_slug",
            "list_articles",
            "get_article",
            "get_article_by_slug",
            "translations",
        }
    ),
    "forms": frozenset({"get_form", "list_forms", "list_departments"}),
}
# The events that drop a group (a domain's reads of the event's tenant).
DROPPED_BY: dict[str, str] = {
    "tenant.changed": "tenants",
    "article.changed": "kb",
    "category.changed": "kb",
    "form.changed": "forms",
}
# Writes that change none of the reads kept (counters and logs): they leave the cache alone.
KEEPS: frozenset[str] = frozenset(
    {
        "add_article_views",
        "record_feedback",
        "record_missed_search",
        "record_deflection",
    }
)

# (domain, method) of every write: a read never drops anything.
WRITES: frozenset[tuple[str, str]] = frozenset(
    (op.domain, op.method) for op in OPERATIONS if op.is_write
)

Key = tuple[str, str, Hashable]


class ReadCache:
    """Answers of cached reads by (domain, method, arguments), each with its expiry."""

    def __init__(self, ttl: float = TTL_S, size: int = SIZE) -> None:
        self.ttl = ttl
        self.size = size
        # key -> (expires at, tenant id or None, answer or the NotFound raised)
        self._entries: OrderedDict[Key, tuple[float, int | None, Any]] = OrderedDict()
        # Bumped by every drop: a read that began before one may carry what it dropped.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def read(
        self,
        domain: str,
        method: str,
        args: dict[str, Any],
        fetch: Callable[[], Awaitable[Any]],
    ) -> Any:
        """`fetch()`'s answer, from the cache when the read is one kept and still fresh."""
        key = _key(domain, method, args) if self.ttl > 0 else None
        if key is None or method not in CACHED.get(domain, ()):
            return await fetch()
        now = time.monotonic()
        found = self._entries.get(key)
        if found is not None and found[0] > now:
            self._entries.move_to_end(key)
            return _answer(found[2])
        generation = self._generation
        try:
            value: Any = await fetch()
        except NotFound as missing:
            value = missing
        except CoreUnavailable:
            if found is not None:  # past its time, but better than no page at all
                return _answer(found[2])
            raise
        if generation == self._generation:
            self._entries[key] = (time.monotonic() + self.ttl, args.get("tenant_id"), value)
            self._entries.move_to_end(key)
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return _answer(value)

    def wrote(self, domain: str, method: str, args: dict[str, Any]) -> None:
        """After a call: if it was a write, drop what it may have changed, in this process at
        once (reads and writes that change nothing kept leave the cache alone)."""
        if domain in CACHED and method not in KEEPS and (domain, method) in WRITES:
            self.drop(domain, args.get("tenant_id"))

    def heard(self, event: Event) -> None:
        """Drop what the core's `event` says changed."""
        if event.type == EVENTS_RESUMED:
            self.clear()
        elif event.type in DROPPED_BY:
            self.drop(DROPPED_BY[event.type], event.tenant_id)

    def drop(self, domain: str, tenant_id: int | None = None) -> None:
        """Drop a domain's reads of `tenant_id` (None: of every tenant), and the reads that
        take no tenant (a tenant by slug or host)."""
        self._generation += 1
        for key, (_expires, owner, _value) in list(self._entries.items()):
            if key[0] == domain and (tenant_id is None or owner in (tenant_id, None)):
                del self._entries[key]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


class DroppingBus(EventBus):
    """The remote core's event bus: drops cached reads before any subscriber hears an event,
    so that what a subscriber reads again is fresh."""

    def __init__(self, cache: ReadCache) -> None:
        super().__init__()
        self.cache = cache

    def publish(self, event: Event) -> None:
        self.cache.heard(event)
        super().publish(event)


def _key(domain: str, method: str, args: dict[str, Any]) -> Key | None:
    frozen = tuple(sorted(args.items()))
    try:
        hash(frozen)
    except TypeError:  # an argument that is a list or dict: such reads are not kept
        return None
    return (domain, method, frozen)


def _answer(value: Any) -> Any:
    if isinstance(value, NotFound):
        raise NotFound(*value.args)
    if isinstance(value, list):
        return list(value)  # the caller may sort or extend its list; ours stays as it was
    return value
