"""The admin home: searches that found nothing and what readers said about articles."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.request_helpers import tenant_of
from portal.services import services


@require_agent("admin")
async def dashboard(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    return admin_page(
        request,
        "admin/dashboard.html",
        {
            "missed": await core.kb.missed_searches(tenant.id, limit=50),
            "feedback": await core.kb.feedback_summary(tenant.id),
        },
    )
