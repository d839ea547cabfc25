"""Admin page for custom domains: add one, see the CNAME to create and each domain's state, check
again, remove.

A domain is added `pending` and checked at once (`portal.domains`); it is served only while
verified. Domains the operator registered (the command line, the demo) are listed as such and
left alone: the admin neither checks nor removes them.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.core.contract import Conflict, NotFound
from portal.core.contract.tenants import Domain
from portal.domains import (
    BadDomain,
    add_and_check,
    check_domain,
    checker_for,
    describe,
    parse_domain,
    tenant_host,
)
from portal.i18n import gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services


def _row(domain: Domain, target: str, issuer: str) -> dict[str, Any]:
    return {
        "domain": domain.domain,
        "status": domain.status if domain.dns_checked else "operator",
        "message": describe(domain, target, issuer),
        "checked_at": domain.checked_at,
        "managed": domain.dns_checked,
    }


async def _page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    settings, tenant = services(request).settings, tenant_of(request)
    target = tenant_host(tenant.slug, settings.base_domain)
    domains = await services(request).core.tenants.list_domains(tenant.id)
    return admin_page(
        request,
        "admin/domains.html",
        {
            "target": target,
            "domains": [_row(domain, target, settings.acme_issuer) for domain in domains],
            "values": values or {},
            "errors": errors or {},
            "done": request.query_params.get("done", ""),
            "nav": "domains",
        },
        status_code=status,
    )


@require_agent("admin")
async def domains(request: Request) -> Response:
    """GET: the page; POST: add the domain in the `domain` field, and check it at once."""
    if request.method != "POST":
        return await _page(request)
    form = await request.form()
    typed = form_text(form, "domain")[:300]
    app = services(request)
    tenant = tenant_of(request)
    try:
        name = parse_domain(typed, app.settings.base_domain)
        await add_and_check(app.core, checker_for(app.settings), tenant.id, tenant.slug, name)
    except BadDomain as exc:
        return await _page(
            request, values={"domain": typed}, errors={"domain": str(exc)}, status=400
        )
    except Conflict:
        error = gettext("This domain is registered already.")
        return await _page(request, values={"domain": typed}, errors={"domain": error}, status=400)
    return redirect_to(request, "admin_domains", "done=added")


async def _managed(request: Request) -> Domain | None:
    """The tenant's admin-added domain named in the form's `domain` field, if there is one."""
    name = form_text(await request.form(), "domain").lower()
    for domain in await services(request).core.tenants.list_domains(tenant_of(request).id):
        if domain.domain == name and domain.dns_checked:
            return domain
    return None


@require_agent("admin")
async def domain_check(request: Request) -> Response:
    """Check a domain again now (after the admin fixed its record)."""
    domain = await _managed(request)
    if domain is None:
        return await _page(
            request, errors={"list": gettext("There is no such domain.")}, status=400
        )
    app = services(request)
    try:
        after = await check_domain(
            app.core, checker_for(app.settings), domain, tenant_of(request).slug
        )
    except NotFound:  # removed meanwhile
        return redirect_to(request, "admin_domains", "done=removed")
    if after.status != domain.status:
        app.tenants.forget()  # served, or not, from this very request on
    return redirect_to(request, "admin_domains", "done=checked")


@require_agent("admin")
async def domain_remove(request: Request) -> Response:
    domain = await _managed(request)
    if domain is None:
        return await _page(
            request, errors={"list": gettext("There is no such domain.")}, status=400
        )
    try:
        await services(request).core.tenants.remove_domain(domain.tenant_id, domain.domain)
    except NotFound:
        pass  # removed already: the list shows the truth
    services(request).tenants.forget()
    return redirect_to(request, "admin_domains", "done=removed")
