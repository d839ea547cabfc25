"""/admin/apps: every customer app with its public address, its switch, and the code that
puts it on the company's site (the widget's snippet, or an iframe of the one app).

A switch is a form of its own (one POST per app), so switching one app never sends the others'
state; the change is a tenant setting (`portal.app_switches`), heard by every process.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.admin.widget import snippets
from portal.app_switches import SWITCHED_APPS, AppSwitches
from portal.capabilities import has
from portal.core.contract import Tenant
from portal.embedding import embed_origins, embeds_anywhere, parse_origins
from portal.i18n import gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services
from portal.urls import absolute, path_for

MAX_SITES_TEXT = 4000


@dataclass(frozen=True)
class AppEntry:
    key: str  # what the switch's form sends: "kb", "chat", "tickets" or "form:ID"
    name: str
    url: str  # its public address
    embed_url: str  # the same app sized for an iframe
    on: bool


def frame_code(entry: AppEntry, origin: str) -> str:
    """The iframe, and the few lines that let it take the height of what it shows."""
    src, title = html.escape(entry.embed_url), html.escape(entry.name)
    return (
        f'<iframe src="{src}" title="{title}" loading="lazy"\n'
        f'  style="width:100%;height:480px;border:0" data-portal-frame></iframe>\n'
        "<script>addEventListener('message',function(e){"
        f"if(e.origin!=={json.dumps(origin)}||!e.data||e.data.type!=='portal:height')return;"
        "document.querySelectorAll('iframe[data-portal-frame]').forEach(function(f){"
        "if(f.contentWindow===e.source)f.style.height=e.data.height+'px'})})</script>"
    )


async def app_entries(request: Request, tenant: Tenant) -> list[AppEntry]:
    switches = AppSwitches.for_tenant(tenant)

    def entry(key: str, name: str, path: str, on: bool) -> AppEntry:
        url = absolute(request, path)
        return AppEntry(key, name, url, url + ("&" if "?" in url else "?") + "embed=1", on)

    language = tenant.default_locale
    entries = [
        entry(
            "kb",
            gettext("Help center"),
            path_for(request, "kb_home", lang=language),
            switches.app_on("kb"),
        )
    ]
    for form in await services(request).core.forms.list_forms(tenant.id):
        path = path_for(request, "forms_page", form_id=form.id)
        entries.append(entry(f"form:{form.id}", form.title, path, switches.form_on(form.id)))
    if has(request, "chat"):
        path = path_for(request, "messenger")
        entries.append(entry("chat", gettext("Chat"), path, switches.app_on("chat")))
    path = path_for(request, "customer_home")
    entries.append(entry("tickets", gettext("My tickets"), path, switches.app_on("tickets")))
    return entries


@require_agent("admin")
async def apps(request: Request) -> Response:
    core = services(request).core
    # Fresh from the core, not the resolver's cached tenant: the switches must show what is stored.
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    if request.method == "POST":
        form = await request.form()
        if form_text(form, "form") == "sites":
            return await _save_sites(request, tenant, form_text(form, "origins"), form)
        key, on = form_text(form, "app"), form_text(form, "on") == "1"
        switches = AppSwitches.for_tenant(tenant)
        ids = {f"form:{f.id}": f.id for f in await core.forms.list_forms(tenant.id)}
        if key in SWITCHED_APPS:
            await core.tenants.update_tenant_settings(tenant.id, switches.switched(key, on))
        elif key in ids:
            await core.tenants.update_tenant_settings(
                tenant.id, switches.form_switched(ids[key], on)
            )
        else:
            return admin_page(
                request,
                "admin/apps.html",
                await _context(request, tenant, gettext("There is no such app to switch.")),
                status_code=400,
            )
        return redirect_to(request, "admin_apps", "done=1")
    return admin_page(request, "admin/apps.html", await _context(request, tenant))


async def _save_sites(request: Request, tenant: Tenant, text: str, form: FormData) -> Response:
    """The sites that may frame the apps (and open chat sockets), or any site if chosen."""
    origins, bad = parse_origins(text)
    any_site = form.get("any_site") == "1"
    if bad or len(text) > MAX_SITES_TEXT:
        error = gettext("Write each site as https://example.com (no path); not: %(sites)s") % {
            "sites": ", ".join(bad[:3]) or text[:40]
        }
        sites = {"origins": text, "any_site": any_site, "error": error}
        context = await _context(request, tenant, sites=sites)
        return admin_page(request, "admin/apps.html", context, status_code=400)
    changes = {"embed_origins": origins, "embed_any_site": any_site}
    await services(request).core.tenants.update_tenant_settings(tenant.id, changes)
    return redirect_to(request, "admin_apps", "done=sites")


async def _context(
    request: Request, tenant: Tenant, error: str = "", sites: dict[str, Any] | None = None
) -> dict[str, object]:
    origin = absolute(request, "")
    entries = await app_entries(request, tenant)
    stored = {
        "origins": "\n".join(embed_origins(tenant)),
        "any_site": embeds_anywhere(tenant),
        "error": "",
    }
    return {
        "entries": [(e, frame_code(e, origin)) for e in entries],
        "snippets": snippets(request),
        "sites": sites or stored,
        "error": error,
        "done": request.query_params.get("done", ""),
        "nav": "apps",
    }
