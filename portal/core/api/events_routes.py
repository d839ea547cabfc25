"""Events out of the core, over the core API: the feed and the webhook endpoints.

    GET    /core/v1/events?after=CURSOR&limit=N   {"events": [envelope, ...], "next": CURSOR}
    POST   /core/v1/webhooks {"url": ...}         201 {"id", "url", "secret"} (the secret once)
    GET    /core/v1/webhooks                      {"webhooks": [{"id", "url", ...}]}
    DELETE /core/v1/webhooks/{id}                 204

All for the bearer key's tenant only. The feed is the source of truth: in cursor order, `limit`
100 by default (at most 1000; 0 gives no events, only `next`: where the feed is now). Without
`after` it starts at the oldest event kept. A cursor older than what is kept (7 days), or one
this core never handed out, is 410: the reader drops what it derived from events and continues
from `resume_after`. Writes take an Idempotency-Key, as every write of the API does.

`EventsOut` is what `portal core` runs for them: the journal writer and the webhook sender.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal.core.api.auth import api_tenant
from portal.core.api.handlers import idempotent, read_body
from portal.core.api.idempotency import HEADER, parse_key
from portal.core.api.problems import ApiProblem, problem
from portal.core.contract import Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.core.envelope import CursorGone, cursor_number, cursor_text
from portal.core.journal import Journal
from portal.core.webhooks.endpoints import BadEndpoint, Endpoints
from portal.core.webhooks.sender import Backoff, WebhookSender
from portal.settings import Settings

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WEBHOOK_BODY = 4096
MAX_DB_ID = 2**31 - 1  # PostgreSQL's integer: a larger id is no endpoint's


class EventsOut:
    """The core's events going out: the journal (feed), the endpoints and the webhook sender.

    `start()` before serving (it subscribes to the core's events), `close()` after.
    """

    def __init__(
        self,
        core: EmbeddedCore,
        *,
        backoff: Backoff | None = None,
        poll_s: float | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.core = core
        self.journal = Journal(core.engine)
        self.endpoints = Endpoints(core.engine)
        options: dict[str, Any] = {"backoff": backoff, "on_failure": on_failure}
        if poll_s is not None:
            options["poll_s"] = poll_s
        self.sender = WebhookSender(self.journal, self.endpoints, **options)
        self._sending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.journal.follow(self.core.events())
        self._sending = asyncio.create_task(self.sender.run(), name="webhook-sender")

    async def close(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)
            self._sending = None
        await self.journal.close()


def events_out_of(app: Starlette) -> EventsOut:
    """The app's EventsOut, made at first use (by the startup task or a request)."""
    found: EventsOut | None = getattr(app.state, "events_out", None)
    if found is None:
        settings: Settings = app.state.settings
        backoff = Backoff(
            first=min(1.0, settings.webhook_retry_max), cap=settings.webhook_retry_max
        )
        found = app.state.events_out = EventsOut(app.state.core, backoff=backoff)
    return found


def events_out(request: Request) -> EventsOut:
    return events_out_of(request.app)


async def run_events_out(app: Starlette) -> None:
    """The core process's startup task: journal the core's events and send webhooks until
    cancelled at shutdown (then append what is pending)."""
    out = events_out_of(app)
    await out.start()
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await out.close()


def _query_number(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _bad_query(name, f"give `{name}` once")
    return values[0] if values else None


def _bad_query(name: str, message: str) -> ApiProblem:
    return ApiProblem(
        400,
        "Bad query parameter",
        message,
        errors=[{"pointer": f"/query/{name}", "detail": message, "type": "value_error"}],
    )


async def list_events(request: Request) -> Response:
    tenant = await api_tenant(request)
    journal = events_out(request).journal
    after_text = _query_number(request, "after")
    limit_text = _query_number(request, "limit")
    try:
        after = await journal.horizon() if after_text is None else cursor_number(after_text)
    except ValueError:
        raise _bad_query(
            "after", "`after` must be a cursor: the `next` or an event's `cursor` of this feed"
        ) from None
    if limit_text is None:
        limit = DEFAULT_LIMIT
    elif limit_text.isascii() and limit_text.isdigit() and int(limit_text) <= MAX_LIMIT:
        limit = int(limit_text)
    else:
        raise _bad_query("limit", f"`limit` must be a whole number from 0 to {MAX_LIMIT}")
    try:
        page = await journal.read(tenant.id, after, limit)
    except CursorGone as gone:
        return problem(
            410,
            "Cursor gone",
            "Events after this cursor are no longer kept (or it is not a cursor of this core): "
            "drop what you derived from events, then read on from `resume_after`.",
            resume_after=cursor_text(gone.resume_after),
        )
    return JSONResponse({"events": page.events, "next": cursor_text(page.next)})


async def _write(
    request: Request, tenant: Tenant, run: Callable[[bytes], Awaitable[Response]]
) -> Response:
    """Run a write on the webhooks under its Idempotency-Key, as every write of the API."""
    key = parse_key(request.headers.get(HEADER))
    body = await read_body(request, MAX_WEBHOOK_BODY)
    return await idempotent(request, tenant, key, body, lambda: run(body))


async def webhooks(request: Request) -> Response:
    tenant = await api_tenant(request)
    endpoints = events_out(request).endpoints
    if request.method == "GET":
        listed = await endpoints.list(tenant.id)
        return JSONResponse({"webhooks": [endpoint.public() for endpoint in listed]})

    async def create(body: bytes) -> Response:
        try:
            fields = json.loads(body)
        except ValueError:
            raise ApiProblem(400, "Malformed JSON", "The request body is not valid JSON.") from None
        if not isinstance(fields, dict):
            raise ApiProblem(400, "Bad request body", 'Send a JSON object: {"url": "https://..."}')
        try:
            endpoint = await endpoints.create(tenant.id, fields.get("url"))
        except BadEndpoint as exc:
            raise ApiProblem(
                422,
                "Invalid webhook",
                str(exc),
                errors=[{"pointer": "/body/url", "detail": str(exc), "type": "value_error"}],
            ) from None
        return JSONResponse(
            {"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret}, 201
        )

    return await _write(request, tenant, create)


async def webhook(request: Request) -> Response:
    tenant = await api_tenant(request)
    endpoints = events_out(request).endpoints
    endpoint_id = request.path_params["webhook_id"]

    async def delete(body: bytes) -> Response:
        if endpoint_id > MAX_DB_ID or not await endpoints.delete(tenant.id, endpoint_id):
            raise ApiProblem(404, "Not Found", f"This tenant has no webhook {endpoint_id}.")
        return Response(status_code=204)

    return await _write(request, tenant, delete)


routes = [
    Route("/core/v1/events", list_events, methods=["GET"], name="core_events"),
    Route("/core/v1/webhooks", webhooks, methods=["GET", "POST"], name="core_webhooks"),
    Route(
        "/core/v1/webhooks/{webhook_id:int}",
        webhook,
        methods=["DELETE"],
        name="core_webhook",
    ),
]
