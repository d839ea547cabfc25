"""The widget's run-time config: what the loader on a customer's site draws, decided here.

It is made from the tenant's branding, its widget settings and its chat settings (business
hours decide the away behaviour), in the visitor's language, and inlined into `/widget.js`, so
the loader costs one request before the first click. The forms list is the one database read;
it is kept for a few seconds per tenant, while the tenant itself comes from the resolver's
cache, which an admin's change empties at once.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from portal.app_switches import AppSwitches
from portal.core.contract import HelpdeskCore, Tenant
from portal.embedding import embed_origins, embeds_anywhere
from portal.i18n import current_language, gettext
from portal.messenger.hours import ChatSettings, is_open
from portal.request_helpers import tenant_of
from portal.services import services
from portal.urls import absolute, path_for
from portal.widget.settings import WidgetSettings

FORMS_TTL_S = 10.0


class FormIds:
    """The ids of each tenant's forms, kept briefly: every page view on a customer's site asks."""

    def __init__(self, ttl: float = FORMS_TTL_S) -> None:
        self.ttl = ttl
        self._ids: dict[int, tuple[float, tuple[int, ...]]] = {}

    async def get(self, core: HelpdeskCore, tenant: Tenant) -> tuple[int, ...]:
        now = time.monotonic()
        cached = self._ids.get(tenant.id)
        if cached is not None and cached[0] > now:
            return cached[1]
        ids = tuple(f.id for f in await core.forms.list_forms(tenant.id))
        if len(self._ids) > 10_000:
            self._ids.clear()
        self._ids[tenant.id] = (now + self.ttl, ids)
        return ids


def contact_form(tenant: Tenant, settings: WidgetSettings, ids: tuple[int, ...]) -> int | None:
    """The form "contact us" opens: the chosen one while it exists and is on, else the first
    that is on."""
    switches = AppSwitches.for_tenant(tenant)
    ids = tuple(i for i in ids if switches.form_on(i))
    if settings.form_id in ids:
        return settings.form_id
    return ids[0] if ids else None


def available_apps(
    tenant: Tenant,
    settings: WidgetSettings,
    form_id: int | None,
    now_open: bool,
    *,
    core_has_chat: bool,
) -> tuple[tuple[str, ...], bool]:
    """(the apps the panel offers, whether the launcher shows at all)."""
    # A core without chat is a tenant with chat switched off, whatever its settings say.
    chat_on = core_has_chat and ChatSettings.for_tenant(tenant).enabled
    switches = AppSwitches.for_tenant(tenant)
    apps = [
        a
        for a in settings.apps
        if (a != "form" or form_id is not None) and (a == "form" or switches.app_on(a))
    ]
    if "chat" in apps and not chat_on:
        apps.remove("chat")
    if chat_on and not now_open:
        if settings.away == "hide":
            return (), False
        if "chat" in apps:
            apps.remove("chat")
        if settings.away == "form" and form_id is not None and "form" not in apps:
            apps.append("form")
    return tuple(apps), bool(apps)


async def widget_config(request: Request) -> dict[str, Any]:
    """Everything the loader needs, in the request's language."""
    tenant = tenant_of(request)
    settings = WidgetSettings.for_tenant(tenant)
    language = current_language()
    app = services(request)
    ids = await app.widget_form_ids.get(app.core, tenant)
    form_id = contact_form(tenant, settings, ids)
    now_open = is_open(ChatSettings.for_tenant(tenant).business_hours)
    apps, visible = available_apps(
        tenant, settings, form_id, now_open, core_has_chat=app.core.capabilities.chat
    )
    strings = {
        "label": settings.label or gettext("Help"),
        "open": gettext("Open help"),
        "close": gettext("Close help"),
        "unread": gettext("New messages"),
        "greeting": settings.greeting or gettext("How can we help?"),
    }
    return {
        "origin": absolute(request, ""),
        "panel": path_for(request, "widget_panel"),
        "lang": language,
        "name": tenant.name,
        "color": tenant.primary_color,
        "logo": tenant.logo_url,
        "position": settings.position,
        "offset": [settings.offset_x, settings.offset_y],
        "z": settings.z_index,
        "apps": list(apps),
        "form": form_id,
        "visible": visible,
        "sites": ["*"] if embeds_anywhere(tenant) else embed_origins(tenant),
        "strings": strings,
    }
