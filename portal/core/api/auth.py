"""Who is calling: the bearer key names one tenant, and every handler works for that tenant only.

`api_tenant(request)` is the one gate of the core API's handlers (the events and webhooks routes
call it too); `api_core(request)` is the core the app serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from portal.core.api.problems import ApiProblem
from portal.core.contract import HelpdeskCore, NotFound, Tenant

if TYPE_CHECKING:
    from portal.core.api.keys import ApiKeys

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def api_core(request: Request) -> HelpdeskCore:
    core: HelpdeskCore = request.app.state.core
    return core


def api_keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(
            401,
            "Unauthorized",
            "Send the tenant's core API key as 'Authorization: Bearer KEY' "
            "(create one with `portal core-key --tenant SLUG`).",
            headers=_CHALLENGE,
        )
    return token.strip()


async def api_tenant(request: Request) -> Tenant:
    """The tenant of the request's bearer key; 401 problem for a missing, unknown or revoked key."""
    cached: Tenant | None = request.scope.get("state", {}).get("api_tenant")
    if cached is not None:
        return cached
    key = await api_keys(request).lookup(_bearer(request))
    if key is None:
        raise ApiProblem(
            401, "Unauthorized", "The API key is unknown or revoked.", headers=_CHALLENGE
        )
    try:
        tenant = await api_core(request).tenants.get_tenant(key.tenant_slug)
    except NotFound:
        raise ApiProblem(
            401, "Unauthorized", "The API key's tenant no longer exists.", headers=_CHALLENGE
        ) from None
    request.state.api_tenant = tenant
    request.state.api_key_id = key.id
    return tenant
