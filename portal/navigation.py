"""The header navigation every standalone page shares: one site instead of four islands.

Help center, Contact us (the tenant's contact form), Chat and My tickets (or Sign in), each only
while the tenant's widget switches (`WidgetSettings.apps`) list its app and the app can work: a
form to contact, the chat switched on. The widget's panel offers the same apps, decided by the
same functions (`portal.widget.config`), so the site and the panel never disagree.

Pages are built without awaiting (`portal.templating.render`), yet the contact form needs the
tenant's forms: `prepare` reads them (one cached read, shared with the widget's config) when the
page is sent, and `site_nav` then builds the items, once per request and language.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.requests import Request

from portal.customer.session import session_data
from portal.templating import gettext as _
from portal.templating import page_language
from portal.urls import path_for
from portal.widget.config import available_apps, contact_form, form_ids
from portal.widget.settings import WidgetSettings

log = logging.getLogger(__name__)

ORDER = ("kb", "form", "chat", "tickets")  # as the header lists them
# Which app a path belongs to, so its item is marked as the current page.
_APP_PATHS = (("/kb/", "kb"), ("/forms/", "form"), ("/messenger", "chat"), ("/portal", "tickets"))


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    key: str  # the app: "kb", "form", "chat" or "tickets"
    current: bool = False


async def prepare(request: Request) -> None:
    """Read what `site_nav` cannot read without awaiting: the tenant's contact form."""
    state = request.state
    if hasattr(state, "nav_form_id"):
        return  # once per request, however many pages it renders (e.g. an error page)
    tenant = state.tenant
    try:
        ids = await form_ids(request).get(request, tenant)
    except Exception:
        # Every page of the tenant, error pages too, waits for this read: when the core fails,
        # the page (maybe the one telling of the failure) shows without "Contact us" instead.
        log.warning("forms unreadable for the navigation of %s", tenant.slug, exc_info=True)
        ids = ()
    state.nav_form_id = contact_form(WidgetSettings.for_tenant(tenant), ids)


def site_nav(request: Request, lang: str | None = None) -> list[NavItem]:
    """The header's items for this request's tenant, in `lang` (else the negotiated language).

    Needs `prepare` first. Labels are translated into the language being rendered, so call it
    while rendering; the result is kept for the rest of the request.
    """
    lang = lang or page_language(request)
    state = request.state
    cache: dict[str, list[NavItem]] = getattr(state, "nav_items", None) or {}
    if lang in cache:
        return cache[lang]
    tenant = state.tenant
    form_id: int | None = state.nav_form_id
    # Business hours do not hide the chat's page: outside them it takes the visitor's email.
    apps, _visible = available_apps(tenant, WidgetSettings.for_tenant(tenant), form_id, True)
    here = request.url.path
    current = next((app for prefix, app in _APP_PATHS if here.startswith(prefix)), None)
    items: list[NavItem] = []
    for app in sorted(apps, key=ORDER.index):
        if app == "kb":
            label, url = _("Help center"), path_for(request, "kb_home", lang=lang)
        elif app == "form" and form_id is not None:
            url = path_for(request, "forms_page", form_id=form_id)
            if lang != page_language(request):
                url += f"?lang={lang}"  # keep the language the visitor chose in the help center
            label = _("Contact us")
        elif app == "chat":
            label, url = _("Chat"), path_for(request, "messenger")
        elif app == "tickets" and session_data(request) is not None:
            label, url = _("My tickets"), path_for(request, "customer_tickets")
        elif app == "tickets":
            label, url = _("Sign in"), path_for(request, "customer_sign_in")
        else:
            continue
        items.append(NavItem(label, url, app, app == current))
    state.nav_items = {**cache, lang: items}
    return items
