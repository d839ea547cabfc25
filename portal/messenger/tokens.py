"""Signed visitor tokens, `POST /messenger/token`.

The same token comes back if the body carries a valid one, else one for a new visitor (new
visitors are rate limited per address and tenant).
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.jsonsafe import JSONError
from portal.jsonsafe import loads as json_loads
from portal.messenger.service import read_visitor_token, visitor_token
from portal.ratelimit import TOKENS_PER_ADDRESS, TOKENS_PER_TENANT, client_ip, too_many
from portal.request_helpers import tenant_of
from portal.services import services


async def issue_token(request: Request) -> Response:
    tenant = tenant_of(request)
    signer = services(request).signer
    try:
        body = json_loads(await request.body() or b"{}")
    except JSONError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    old = body.get("token") if isinstance(body, dict) else None
    visitor_id = read_visitor_token(signer, tenant.id, old)
    if visitor_id is None:
        # Only new visitors count: a visitor id is what the per-visitor limits key on.
        refused = services(request).rate_limits.check(
            tenant, (TOKENS_PER_ADDRESS, client_ip(request)), (TOKENS_PER_TENANT, "")
        )
        if refused:
            return too_many(request, refused)
        visitor_id = secrets.token_urlsafe(16)
    token = visitor_token(signer, tenant.id, visitor_id)
    return JSONResponse(
        {"token": token, "visitor_id": visitor_id}, headers={"Cache-Control": "no-store"}
    )
