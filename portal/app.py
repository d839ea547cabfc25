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
from portal.core.embedded.core import EmbeddedCore
from portal.customer.auth import SignInLimits
from portal.customer.lists import TicketLists
from portal.customer.notifications import notify_customers
from portal.customer.routes import routes as customer_routes
from portal.domains import recheck_forever
from portal.embedding import TenantCSP
from portal.events import EventFeed
from portal.forms.cache import FormCache
from portal.forms.routes import routes as forms_routes
from portal.hub import make_hub
from portal.i18n import LanguageMiddleware
from portal.kb.routes import routes as kb_routes
from portal.kb.search import SearchService
from portal.kb.store import KnowledgeBase
from portal.loopwatch import watch_loop
from portal.mail import Mailer
from portal.messenger.routes import routes as messenger_routes
from portal.messenger.service import Messenger
from portal.messenger.sockets import ConnectionLimits
from portal.navigation import NavigationMiddleware
from portal.platform_api import routes as platform_routes
from portal.ratelimit import RateLimits
from portal.resources import STATIC_DIR
from portal.routing import IndexedRouter
from portal.security import SecurityHeadersMiddleware, Signer
from portal.services import Services, services
from portal.sessions.cache import SessionCache
from portal.settings import Settings
from portal.templating import make_templates, render
from portal.tenancy import TenancyMiddleware, TenantResolver
from portal.urls import PathCache, TenantURLs
from portal.widget.config import FormIds
from portal.widget.identity import routes as identity_routes
from portal.widget.routes import LoaderCache
from portal.widget.routes import routes as widget_routes

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


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


async def _follow_core_events(feed: EventFeed, resolver: TenantResolver, kb: KnowledgeBase) -> None:
    """Drop cached tenants and article pages when the core (in any process) says they changed."""
    async for event in feed.events():
        if event.type == "tenant.changed":
            resolver.forget()
        elif event.type in ("article.changed", "category.changed"):
            kb.invalidate(event.tenant_id)
        elif event.type == EVENTS_RESUMED:  # changes may have gone unheard: forget them all
            resolver.forget()
            kb.invalidate_all()


def create_app(settings: Settings | None = None, core: HelpdeskCore | None = None) -> Starlette:
    """The whole service. Pass `core` to share one core between apps (tests, benchmarks)."""
    settings = settings or Settings.from_env()
    settings.validate()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Services]]:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        own_core = core is None
        the_core: HelpdeskCore = core or EmbeddedCore(settings.resolved_database_url)
        if own_core:
            await the_core.start()
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
        feed = EventFeed(the_core, hub)
        sessions = SessionCache()
        ticket_lists = TicketLists()
        tasks = [
            asyncio.create_task(feed.run(), name="event-relay"),
            asyncio.create_task(search.follow_events(feed.events()), name="search-follow"),
            asyncio.create_task(_follow_core_events(feed, resolver, kb), name="cache-follow"),
            asyncio.create_task(sessions.follow(feed.events()), name="session-follow"),
            asyncio.create_task(ticket_lists.follow(feed.events()), name="ticket-list-follow"),
            asyncio.create_task(kb.flush_views_forever(), name="view-flush"),
            asyncio.create_task(recheck_forever(the_core, settings, resolver), name="domains"),
            asyncio.create_task(
                notify_customers(the_core, mailer, signer, TenantURLs(settings, paths)),
                name="customer-mail",
            ),
        ]
        if settings.loop_lag_file:
            tasks.append(asyncio.create_task(watch_loop(Path(settings.loop_lag_file)), name="loop"))
        if the_core.capabilities.chat:
            tasks.append(asyncio.create_task(messenger.watch_unanswered(), name="chat-watch"))
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
            form_cache=FormCache(),
            sessions=sessions,
            ticket_lists=ticket_lists,
            widget_form_ids=FormIds(),
            widget_loaders=LoaderCache(),
            rate_limits=RateLimits(),
            sign_in_limits=SignInLimits(),
            login_guard=LoginGuard(),
            socket_limits=ConnectionLimits(settings.ws_max_per_ip_count),
        )
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
            await kb.flush_views()
            search.close()
            if own_core:
                await the_core.close()

    routes = [
        Route("/healthz", healthz, name="healthz"),
        Route("/_tls/ask", tls_ask, name="tls_ask"),
        *platform_routes,
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
