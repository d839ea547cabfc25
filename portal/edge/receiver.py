"""`POST /_core/events`: the core's signed webhooks, on any host (the core is no tenant's visitor).

The tenancy middleware lets `/_core/` through as it does `/_tls/ask`; `CoreEvents.receive` does
the checking. Answers are JSON: 200 `{"status": "accepted" | "duplicate"}`, or the refusal's
status with `{"error": why}`. Off (404) unless PORTAL_CORE_WEBHOOK_SECRET is set.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal.edge.core_events import Refused
from portal.services import services


async def core_event_webhook(request: Request) -> Response:
    core_events = services(request).core_events
    if core_events is None or not core_events.receives_webhooks:
        return JSONResponse(
            {"error": "This edge takes no core webhooks (PORTAL_CORE_WEBHOOK_SECRET is empty)."},
            404,
        )
    body = await request.body()
    try:
        outcome = await core_events.receive(body, request.headers)
    except Refused as refusal:
        retry = {"Retry-After": "1"} if refusal.status == 503 else None
        return JSONResponse({"error": refusal.message}, refusal.status, headers=retry)
    return JSONResponse({"status": outcome})


routes = [Route("/_core/events", core_event_webhook, methods=["POST"], name="core_event_webhook")]
