"""The objects one app keeps for all its requests, built by its lifespan: `Services`.

Handlers reach them only through `services(request_or_websocket)`. They belong to the app, not
to the module, so two apps in one process (tests, benchmarks) never share a core, a cache or a
limiter's counts. What a request carries for itself (its tenant, the signed-in agent or
customer) is read with the accessors of `portal.request_helpers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

if TYPE_CHECKING:  # the modules below import this one for `services()`
    from starlette.templating import Jinja2Templates

    from portal.admin.auth import LoginGuard
    from portal.attachments import AttachmentStore
    from portal.core.contract import HelpdeskCore
    from portal.customer.auth import SignInLimits
    from portal.customer.lists import TicketLists
    from portal.edge.core_events import CoreEvents
    from portal.edge.outbox import EdgeOutbox
    from portal.events import EventFeed
    from portal.forms.cache import FormCache
    from portal.health import Health
    from portal.hub import Hub
    from portal.kb.search import SearchService
    from portal.kb.store import KnowledgeBase
    from portal.mail import Mailer
    from portal.messenger.service import Messenger
    from portal.messenger.sockets import ConnectionLimits
    from portal.metrics import Metrics
    from portal.ratelimit import RateLimits
    from portal.security import Signer
    from portal.sessions.cache import SessionCache
    from portal.settings import Settings
    from portal.tenancy import TenantResolver
    from portal.urls import PathCache
    from portal.widget.config import FormIds
    from portal.widget.routes import LoaderCache


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a handler may use beyond its request; fields are fixed once the app starts."""

    settings: Settings
    core: HelpdeskCore
    tenants: TenantResolver
    signer: Signer
    templates: Jinja2Templates
    paths: PathCache
    search: SearchService
    kb: KnowledgeBase
    attachments: AttachmentStore
    mailer: Mailer
    hub: Hub
    messenger: Messenger
    events: EventFeed
    metrics: Metrics  # this app's Prometheus registry
    health: Health  # readiness checks; the outbox registers its probe here
    # Small caches, each read on hot pages and dropped or expired on change.
    form_cache: FormCache
    sessions: SessionCache  # sessions, signed-in customers and sessions' CSRF tokens
    ticket_lists: TicketLists  # customers' ticket list pages as rendered
    widget_form_ids: FormIds
    widget_loaders: LoaderCache
    # Limits: counts per app instance and process.
    rate_limits: RateLimits
    sign_in_limits: SignInLimits
    login_guard: LoginGuard
    socket_limits: ConnectionLimits
    # A remote core's events in (webhooks and feed); None on the embedded core.
    core_events: CoreEvents | None = None
    # The outbox of a remote core's writes; None on the embedded core.
    outbox: EdgeOutbox | None = None


def services(connection: HTTPConnection) -> Services:
    """The services of the app serving this request or websocket."""
    try:
        found: Services = connection.scope["state"]["services"]
    except KeyError:
        # Only the lifespan makes them: a server run without it (`--lifespan off`) cannot serve.
        raise RuntimeError("the app's lifespan has not run: it has no services") from None
    return found
