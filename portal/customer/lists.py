"""The signed-in customer's ticket list pages, kept as rendered until a ticket event says otherwise.

A list page is kept per tenant and variant: everything else its HTML depends on (the customer
and the scope they see, the filter, the search, the page number, the language, the frame, the
header). Each tenant's pages are keyed by its generation, which every event that can change
what a list shows advances, in whichever process it happened (`portal.events`):
- a ticket made (`ticket.created`, also for a chat turned into a ticket, `chat.ticketed`), a
  reply (any, an internal note too: it moves the ticket's `updated_at`, by which lists sort),
  a status change, an assignment (it moves `updated_at` too), a rating;
- a customer changed (`customer.changed`: a name or address shown as the requester, an
  organization joined or left);
- the tenant changed (`tenant.changed`: branding, and `ticket_visibility`, the organization
  sharing setting).
`EVENTS_RESUMED` (events of other processes may have gone unheard) drops every page. A page read
while an event lands is kept under the generation from before its read, so it is never found
again. What is made per answer (the session's CSRF token) goes into the places left for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Hashable
from dataclasses import replace

from portal.core.contract import EVENTS_RESUMED, Event, Tenant
from portal.customer.pages import KeptPage
from portal.kb.store import LRU

# What changes a list: see the module's docstring.
LIST_EVENTS = frozenset(
    {
        "ticket.created",
        "ticket.replied",
        "ticket.status_changed",
        "ticket.assigned",
        "ticket.rated",
        "chat.ticketed",
        "customer.changed",
        "tenant.changed",
    }
)
MAX_PAGES = 2048  # a page is ~10 KB (and its gzip form ~2 KB)

Generation = tuple[int, int]


class TicketLists:
    """Rendered ticket list pages of one app, per tenant generation."""

    def __init__(self, max_pages: int = MAX_PAGES) -> None:
        self._pages: LRU[tuple[int, Generation, Hashable], KeptPage] = LRU(max_pages)
        self._generations: dict[int, int] = {}
        self._epoch = 0  # advanced by `invalidate_all`

    def generation(self, tenant_id: int) -> Generation:
        """The tenant's generation now: take it before reading what will be kept."""
        return self._epoch, self._generations.get(tenant_id, 0)

    def kept(self, tenant: Tenant, variant: Hashable) -> KeptPage | None:
        """The page kept for `variant` while its tenant and tickets are as it showed them."""
        key = (tenant.id, self.generation(tenant.id), variant)
        page = self._pages.get(key)
        if page is None or page.tenant is tenant:
            return page
        if page.tenant != tenant:
            return None
        # The same tenant read again (the resolver's cache time passed): compare once only.
        page = replace(page, rendered=replace(page.rendered, tenant=tenant))
        self._pages.put(key, page)
        return page

    def keep(self, variant: Hashable, generation: Generation, page: KeptPage) -> None:
        """Keep a page under the generation taken before its tickets were read."""
        self._pages.put((page.tenant.id, generation, variant), page)

    def invalidate(self, tenant_id: int) -> None:
        """Forget the tenant's pages: something they show changed."""
        self._generations[tenant_id] = self._generations.get(tenant_id, 0) + 1

    def invalidate_all(self) -> None:
        """Forget every page: changes may have gone unheard."""
        self._epoch += 1
        self._pages.clear()

    async def follow(self, events: AsyncIterator[Event]) -> None:
        """Forget the pages the core (in any process) says changed, until cancelled."""
        async for event in events:
            if event.type in LIST_EVENTS:
                self.invalidate(event.tenant_id)
            elif event.type == EVENTS_RESUMED:
                self.invalidate_all()

    def __len__(self) -> int:
        return len(self._pages)
