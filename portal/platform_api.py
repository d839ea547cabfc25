"""The operators' API: `/_platform/tenants`, for a hosting company's own sign-up page.

    GET  /_platform/tenants    {"tenants": [{"slug", "name", "hosts"}]}
    POST /_platform/tenants    {"slug", "name", "admin_email"} -> 201 with the tenant, its hosts
                               and the first admin's one-time welcome link

Every call carries `Authorization: Bearer PORTAL_PLATFORM_KEY`; a missing or wrong key is 401.
With no key configured the API does not exist (404). Refusals are JSON: 400 for a body that is
not a JSON object, 422 with `errors` per field for bad values, 409 for a taken slug. It is
served on any host (the operator's, not a tenant's): the tenancy middleware lets it through.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal import jsonsafe
from portal.core.contract import Tenant
from portal.provisioning import Refused, checked, provision, tenant_hosts
from portal.services import services
from portal.settings import Settings

MAX_BODY = 4096


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _refused_auth(request: Request) -> Response | None:
    """The answer for a call without the right key, or None when it may go on."""
    key = services(request).settings.platform_key
    if not key:
        return _error(404, "The operators' API is switched off (PORTAL_PLATFORM_KEY is empty).")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        response = _error(401, "Send the platform key as `Authorization: Bearer KEY`.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="platform"'
        return response
    return None


def _described(settings: Settings, tenant: Tenant) -> dict[str, Any]:
    return {"slug": tenant.slug, "name": tenant.name, "hosts": tenant_hosts(settings, tenant)}


async def tenants(request: Request) -> Response:
    if (refusal := _refused_auth(request)) is not None:
        return refusal
    app = services(request)
    if request.method == "GET":
        listed = await app.core.tenants.list_tenants()
        return JSONResponse({"tenants": [_described(app.settings, t) for t in listed]})
    body = await request.body()
    try:
        payload = jsonsafe.loads(body) if len(body) <= MAX_BODY else None
    except jsonsafe.JSONError as exc:
        return _error(400, str(exc))
    if not isinstance(payload, dict):
        return _error(400, f"Send a JSON object of at most {MAX_BODY} bytes.")
    fields = {name: payload.get(name, "") for name in ("slug", "name", "admin_email")}
    if not all(isinstance(value, str) for value in fields.values()):
        return _error(422, "slug, name and admin_email must be strings.")
    try:
        made = await provision(app.core, app.settings, app.signer, checked(**fields))
    except Refused as exc:
        return _error(409 if exc.taken else 422, str(exc), errors=exc.errors)
    described = _described(app.settings, made.tenant)
    answer = {**described, "admin_email": made.admin.email, "admin_welcome_url": made.welcome_url}
    return JSONResponse(answer, status_code=201)


routes = [Route("/_platform/tenants", tenants, methods=["GET", "POST"], name="platform_tenants")]
