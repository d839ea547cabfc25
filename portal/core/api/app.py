"""The core API app that `portal core` serves: the embedded core alone, over HTTP, so that edge
and core run as two processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from portal.core.api.auth import api_core, api_tenant
from portal.core.api.events_routes import routes as events_routes
from portal.core.api.events_routes import run_events_out
from portal.core.api.handlers import endpoint
from portal.core.api.idempotency import IdempotencyStore
from portal.core.api.keys import ApiKeys
from portal.core.api.openapi import openapi_document
from portal.core.api.operations import OPERATIONS, PREFIX
from portal.core.api.problems import ApiProblem, problem
from portal.core.api.wire import adapter
from portal.core.contract import Capabilities, Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings

log = logging.getLogger(__name__)

# A task the core process runs while it serves (started after the core, cancelled at shutdown).
StartupTask = Callable[[Starlette], Coroutine[Any, Any, None]]


async def capabilities(request: Request) -> Response:
    await api_tenant(request)
    body = adapter(Capabilities).dump_json(api_core(request).capabilities)
    return Response(body, media_type="application/json")


async def own_tenant(request: Request) -> Response:
    tenant = await api_tenant(request)
    return Response(adapter(Tenant).dump_json(tenant), media_type="application/json")


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def api_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route(PREFIX + "/openapi.json", openapi, methods=["GET"]),
        Route(PREFIX + "/capabilities", capabilities, methods=["GET"]),
        Route(PREFIX + "/tenant", own_tenant, methods=["GET"]),
    ]
    routes += [Route(op.route_path, endpoint(op), methods=[op.verb]) for op in OPERATIONS]
    return routes


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return exc.response()


async def _http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
    detail = "" if exc.detail == title else str(exc.detail)
    return problem(exc.status_code, title, detail, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return problem(500, "Internal Server Error", "The core failed; the error is logged.")


def create_core_app(settings: Settings, core: EmbeddedCore | None = None) -> Starlette:
    """The core API on `core` (default: the embedded core on PORTAL_DATABASE_URL), which the
    app's lifespan starts (migrations included) and closes."""
    the_core = core or EmbeddedCore(settings.resolved_database_url)

    routes: list[BaseRoute] = [
        *api_routes(),
        # --- More routes of the core API (events feed, webhooks) are appended here. ---
        *events_routes,
    ]
    startup_tasks: list[StartupTask] = [
        # --- Background tasks of the core process (the webhook sender) are appended here. ---
        run_events_out,
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await the_core.start()
        tasks = [asyncio.create_task(task(app)) for task in startup_tasks]
        try:
            yield
        finally:
            for running in tasks:
                running.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await the_core.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiProblem: _api_problem,
            HTTPException: _http_problem,
            Exception: _server_error,
        },
    )
    app.state.settings = settings
    app.state.core = the_core
    app.state.api_keys = ApiKeys(the_core.engine)
    app.state.idempotency = IdempotencyStore(the_core.engine)
    return app
