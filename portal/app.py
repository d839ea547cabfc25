"""create_app(settings): the routing table, middleware and lifespan of the service."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from portal.admin.auth import LoginGuard
from portal.admin.routes import routes as admin_routes
from portal.agent.routes import routes as agent_routes
from portal.app_switches import gate_switched_routes
from portal.attachments import AttachmentStore
from portal.bodylimit import BodyLimitMiddleware
from portal.capabilities import gate_routes
from portal.compression import GZipMiddleware
from portal.core.contract import EVENTS_RESUMED, HelpdeskCore
from portal.core.contract.events import CHAT_MESSAGE, FORM_CHANGED
from portal.core.remote.core import RemoteCore
from portal.core.remote.select import core_from_settings
from portal.customer.auth import SignInLimits
from portal.customer.lists import LIST_EVENTS, TicketLists
from portal.customer.notifications import notify_customers
from portal.customer.routes import routes as customer_routes
from portal.domains import recheck_forever
from portal.edge.chat_relay import relay_chat_messages
from portal.edge.core_events import edge_core_events
from portal.edge.outbox import EdgeOutbox
from portal.edge.receiver import routes as core_webhook_routes
from portal.embedding import TenantCSP
from portal.events import EventFeed
from portal.forms.cache import FormCache
from portal.forms.routes import routes as forms_routes
from portal.health import Health
from portal.health import routes as health_routes
from portal.hub import make_hub
from portal.i18n import LanguageMiddleware
from portal.kb.routes import routes as kb_routes
from portal.kb.search import SEARCH_EVENTS, SearchService
from portal.kb.store import KnowledgeBase
from portal.loopwatch import watch_loop
from portal.mail import Mailer
from portal.messenger.routes import routes as messenger_routes
from portal.messenger.service import Messenger
from portal.messenger.sockets import ConnectionLimits
from portal.metrics import Metrics
from portal.metrics import routes as metrics_routes
from portal.navigation import NavigationMiddleware
from portal.platform_api import routes as platform_routes
from portal.ratelimit import RateLimits
from portal.resources import STATIC_DIR
from portal.routing import IndexedRouter
from portal.security import SecurityHeadersMiddleware, Signer
from portal.services import Services, services
from portal.sessions.cache import SESSION_EVENTS, SessionCache
from portal.settings import Settings
from portal.templating import compile_all, make_templates, render
from portal.tenancy import TenancyMiddleware, TenantResolver
from portal.urls import PathCache, TenantURLs
from portal.widget.config import FormIds
from portal.widget.identity import routes as identity_routes
from portal.widget.routes import LoaderCache
from portal.widget.routes import routes as widget_routes

log = logging.getLogger(__name__)


async def tls_ask(request: Request) -> Response:
    """Caddy's on-demand TLS "ask": 200 only for hosts we serve, so only they get certificates.

    Those are a tenant's verified custom domains (pending and failed ones get 404) and the
    `{slug}.{base_domain}` host of an existing tenant: a wildcard certificate would cover those,
    but it needs the DNS-01 challenge (a DNS provider plugin Debian's caddy lacks), so each
    tenant host gets its own on demand. Unknown slugs get 404, so nobody can make us ask a CA
    for certificates for made-up names.
    """
    domain = request.query_params.get("domain", "")
    tenant = await services(request).tenants.resolve(domain) if domain else None
    if tenant is None:
        return PlainTextResponse("unknown domain", status_code=404)
    return PlainTextResponse("ok")


async def _error_page(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else ""
    if status == 500:
        log.exception("unhandled error", exc_info=exc)
    if request.url.path.endswith(".json") or "application/json" in request.headers.get(
        "accept", ""
    ):
        return JSONResponse({"error": detail or "Something went wrong on our side."}, status)
    if status == 405:
        return PlainTextResponse(detail, status_code=status)
    template = "errors/404.html" if status == 404 else "errors/error.html"
    return render(request, template, {"status": status, "detail": detail}, status_code=status)


async def unknown_host(scope: Scope, receive: Receive, send: Send) -> None:
    """The page for a Host that is no tenant's: a plain 404 that names no tenant."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "unknown host"})
        return
    request = Request(scope, receive)
    response = render(
        request,
        "errors/unknown_host.html",
        {"host": request.headers.get("host", "")},
        status_code=404,
    )
    await response(scope, receive, send)


# What `_follow_core_events` drops caches on (EVENTS_RESUMED too: every subscriber hears it).
CACHE_EVENTS = frozenset({"tenant.changed", "article.changed", "category.changed", FORM_CHANGED})


async def _follow_core_events(
    feed: EventFeed, resolver: TenantResolver, kb: KnowledgeBase, forms: FormCache
) -> None:
    """Drop cached tenants, article pages and forms when the core (in any process, or a remote
    core) says they changed."""
    async for event in feed.events(CACHE_EVENTS):
        if event.type == "tenant.changed":
            resolver.forget()
        elif event.type in ("article.changed", "category.changed"):
            kb.invalidate(event.tenant_id)
        elif event.type == FORM_CHANGED:
            forms.forget(event.tenant_id)
        elif event.type == EVENTS_RESUMED:  # changes may have gone unheard: forget them all
            resolver.forget()
            kb.invalidate_all()
            forms.forget_all()


def create_app(
    settings: Settings | None = None,
    core: HelpdeskCore | None = None,
    *,
    compile_templates: bool = False,
) -> Starlette:
    """The whole service. Pass `core` to share one core between apps (tests, benchmarks).

    With `compile_templates` (`portal serve`), every template is compiled as the app starts:
    compiled on a page's first view, one template held the event loop ~20 ms, and every request
    in flight waited. Tests, which start many apps, compile only what they render."""
    settings = settings or Settings.from_env()
    settings.validate()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        metrics = Metrics()  # before the core: a remote core times its calls into it
        own_core = core is None
        # The embedded core, or a remote one when PORTAL_CORE_URL and PORTAL_CORE_KEY are set.
        the_core: HelpdeskCore = core or core_from_settings(settings, timer=metrics.timed_core_call)
        if own_core:
            await the_core.start()
        # Only an edge on a remote core has an outbox: its writes are stored before being sent.
        remote = the_core if isinstance(the_core, RemoteCore) else None
        outbox = await EdgeOutbox.start(settings, remote) if remote is not None else None
        if outbox is not None:
            the_core = outbox.core
        search = SearchService(settings.data_path / "indexes", the_core)
        for tenant in await the_core.tenants.list_tenants():
            await search.catch_up(tenant.id)
        kb = KnowledgeBase(the_core)
        resolver = TenantResolver(the_core, settings.base_domain)
        signer = Signer(settings.secret_key)
        mailer = Mailer(settings)
        hub = make_hub(settings.redis_url)
        await hub.start()
        paths = PathCache(app.router)
        messenger = Messenger(the_core, hub, mailer, signer, paths)
        if outbox is not None:  # visitors' messages are kept on the edge, then sent
            outbox.chat.attach(messenger)
        feed = EventFeed(the_core, hub)
        sessions = SessionCache()
        ticket_lists = TicketLists()
        form_cache = FormCache()
        core_events = edge_core_events(
            settings, metrics
        )  # None unless the edge takes a core's events
        if core_events is not None:
            await core_events.start()
        tasks = [
            asyncio.create_task(feed.run(), name="event-relay"),
            asyncio.create_task(
                search.follow_events(feed.events(SEARCH_EVENTS)), name="search-follow"
            ),
            asyncio.create_task(
                _follow_core_events(feed, resolver, kb, form_cache), name="cache-follow"
            ),
            asyncio.create_task(
                sessions.follow(feed.events(SESSION_EVENTS)), name="session-follow"
            ),
            asyncio.create_task(
                ticket_lists.follow(feed.events(LIST_EVENTS)), name="ticket-list-follow"
            ),
            asyncio.create_task(kb.flush_views_forever(), name="view-flush"),
            asyncio.create_task(recheck_forever(the_core, settings, resolver), name="domains"),
            asyncio.create_task(
                notify_customers(the_core, mailer, signer, TenantURLs(settings, paths)),
                name="customer-mail",
            ),
        ]
        if core_events is not None:
            tasks.append(asyncio.create_task(core_events.run(), name="core-events"))
            if remote is not None:  # whose events() are what reaches its bus
                relay = core_events.relay_to(remote.bus.publish)
                tasks.append(asyncio.create_task(relay, name="core-events-relay"))
                if the_core.capabilities.chat:  # messages agents wrote at the core
                    chat = relay_chat_messages(feed.events({CHAT_MESSAGE}), messenger)
                    tasks.append(asyncio.create_task(chat, name="core-chat-relay"))
        if outbox is not None:
            outbox.outbox.on_change(ticket_lists.invalidate)  # lists show pending tickets
            tasks.append(asyncio.create_task(outbox.outbox.run(), name="outbox"))
        if settings.loop_lag_file:
            tasks.append(asyncio.create_task(watch_loop(Path(settings.loop_lag_file)), name="loop"))
        if the_core.capabilities.chat:
            tasks.append(asyncio.create_task(messenger.watch_unanswered(), name="chat-watch"))
        health = Health(the_core, metrics, settings.ready_timeout)
        health.watch_outbox(outbox.probe if outbox is not None else None)
        app_services = Services(
            settings=settings,
            core=the_core,
            tenants=resolver,
            signer=signer,
            templates=make_templates(settings.data_path / "templates"),
            paths=paths,
            search=search,
            kb=kb,
            attachments=AttachmentStore(settings.data_path / "attachments"),
            mailer=mailer,
            hub=hub,
            messenger=messenger,
            events=feed,
            metrics=metrics,
            health=health,
            form_cache=form_cache,
            sessions=sessions,
            ticket_lists=ticket_lists,
            widget_form_ids=FormIds(),
            widget_loaders=LoaderCache(),
            rate_limits=RateLimits(),
            sign_in_limits=SignInLimits(),
            login_guard=LoginGuard(),
            socket_limits=ConnectionLimits(settings.ws_max_per_ip_count),
            core_events=core_events,
            outbox=outbox,
        )
        if compile_templates:
            compile_all(app_services.templates.env)
        # What startup made (indexes, templates, catalogs) lives as long as the app. Frozen, the
        # collector leaves it out of its full passes: the first full pass under load otherwise
        # walked all of it and held the event loop ~75 ms (issue 11).
        gc.freeze()
        try:
            yield {"services": app_services}
        finally:
            gc.unfreeze()  # collectable again: tests start many apps in one process
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await messenger.close()  # read receipts still pending, before the hub goes
            await hub.close()
            if core_events is not None:
                await core_events.close()
            if outbox is not None:
                await outbox.close()
            await kb.flush_views()
            search.close()
            if own_core:
                await the_core.close()

    routes = [
        *health_routes,  # /healthz, /readyz
        *metrics_routes,
        Route("/_tls/ask", tls_ask, name="tls_ask"),
        *platform_routes,
        *core_webhook_routes,  # /_core/events
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        *kb_routes,
        *forms_routes,
        *customer_routes,
        *messenger_routes,
        *identity_routes,
        *widget_routes,
        Mount("/admin", routes=admin_routes),
        Mount("/agent", routes=agent_routes),  # the console and its socket, /agent/ws
    ]
    gate_routes(routes)  # 404 for the routes of what the core lacks (e.g. chat)
    gate_switched_routes(routes)  # and for the apps a tenant switched off
    middleware = [
        Middleware(SecurityHeadersMiddleware, hsts=settings.production, csp_for=TenantCSP()),
        Middleware(GZipMiddleware, minimum_size=1024),
        Middleware(TenancyMiddleware, not_found_app=unknown_host),
        Middleware(LanguageMiddleware),  # inside tenancy: the tenant's default counts
        Middleware(NavigationMiddleware),  # the header of the tenant's pages, read once
        Middleware(BodyLimitMiddleware),  # inside tenancy: caps follow the tenant's limits
    ]
    app = Starlette(
        middleware=middleware,
        exception_handlers={HTTPException: _error_page, Exception: _error_page},
    )
    app.router = IndexedRouter(routes, lifespan=lifespan)  # see portal.routing for why
    return app
