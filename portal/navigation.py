"""The header navigation every standalone page shares: one site instead of four islands.

Help center, Contact us (the tenant's contact form), Chat and My tickets (or Sign in), each only
while the tenant's widget switches (`WidgetSettings.apps`) list its app and the app can work: a
form to contact, the chat switched on. The widget's panel offers the same apps, decided by the
same functions (`portal.widget.config`), so the site and the panel never disagree.

Pages are rendered without awaiting (`portal.templating.render`), yet the contact form needs the
tenant's forms: `NavigationMiddleware` reads them before the handler runs (one cached read,
shared with the widget's config), and `site_nav` gives the items while a page renders, built
once per tenant and variant and kept with the tenant (`TenantResolver.derived`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.core.contract import Tenant
from portal.i18n import gettext as _
from portal.i18n import page_language, request_language, use_language
from portal.request_helpers import tenant_of
from portal.services import services
from portal.sessions.customer import session_data
from portal.urls import path_for
from portal.widget.config import available_apps, contact_form
from portal.widget.settings import WidgetSettings

log = logging.getLogger(__name__)

ORDER = ("kb", "form", "chat", "tickets")  # as the header lists them
# Which app a path belongs to, so its item is marked as the current page.
_APP_PATHS = (("/kb/", "kb"), ("/forms/", "form"), ("/messenger", "chat"), ("/portal", "tickets"))


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    url: str
    key: str  # the app: "kb", "form", "chat" or "tickets"
    current: bool = False


class SiteNav(tuple[NavItem, ...]):
    """The header's items, hashed once: the pages kept per variant (`portal.kb.pages`) have
    them in every request's key, and a tuple of dataclasses hashes each item every time."""

    _hash: int

    def __new__(cls, items: Iterable[NavItem]) -> SiteNav:
        nav = super().__new__(cls, items)
        nav._hash = tuple.__hash__(nav)
        return nav

    def __hash__(self) -> int:
        return self._hash


async def prepare(scope: Scope) -> None:
    """Read what `site_nav` cannot read without awaiting: the ids of the tenant's forms."""
    state = scope["state"]
    tenant = state["tenant"]
    app = state["services"]
    try:
        ids = await app.widget_form_ids.get(app.core, tenant)
    except Exception:
        # Every page of the tenant, error pages too, needs this read: when the core fails, the
        # page (maybe the one telling of the failure) shows without "Contact us" instead.
        log.warning("forms unreadable for the navigation of %s", tenant.slug, exc_info=True)
        ids = ()
    state["nav_form_ids"] = ids


class NavigationMiddleware:
    """Runs `prepare` once per HTTP request of a tenant, before its handler.

    Most requests render no page, but the read is a cached lookup (`FormIds`); doing it here
    lets every page, error pages included, render its header without awaiting.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "tenant" in scope.get("state", ()):
            await prepare(scope)
        await self.app(scope, receive, send)


def site_nav(request: Request, lang: str | None = None) -> SiteNav:
    """The header's items for this request's tenant, in `lang` (else the request's language).

    Labels are translated into the language being rendered, so call it while rendering. The
    items are built once per tenant and what varies them (its forms, the language, the current
    app, a signed-in visitor, a chosen language), then kept while the tenant is unchanged
    (`TenantResolver.derived`). Without `prepare` (a request that never passed the middleware)
    there is no "Contact us".
    """
    lang = lang or request_language(request)
    scope = request.scope
    tenant = tenant_of(request)
    form_ids: tuple[int, ...] = scope["state"].get("nav_form_ids", ())
    current = _current_app(scope["path"])
    signed_in = session_data(request) is not None
    chosen_language = lang != page_language(request)
    key = ("site_nav", form_ids, lang, current, signed_in, chosen_language)

    def build() -> SiteNav:
        return _items(request, tenant, form_ids, lang, current, signed_in, chosen_language)

    return services(request).tenants.derived(tenant, key, build)


def _current_app(path: str) -> str | None:
    for prefix, app in _APP_PATHS:
        if path.startswith(prefix):
            return app
    return None


def _items(
    request: Request,
    tenant: Tenant,
    form_ids: tuple[int, ...],
    lang: str,
    current: str | None,
    signed_in: bool,
    chosen_language: bool,
) -> SiteNav:
    settings = WidgetSettings.for_tenant(tenant)
    form_id = contact_form(tenant, settings, form_ids)
    # Business hours do not hide the chat's page: outside them it takes the visitor's email.
    apps, _visible = available_apps(
        tenant,
        settings,
        form_id,
        True,
        core_has_chat=services(request).core.capabilities.chat,
    )
    items: list[NavItem] = []
    url: str  # a path, and for the contact form maybe a query
    with use_language(lang):
        for app in sorted(apps, key=ORDER.index):
            if app == "kb":
                label, url = _("Help center"), path_for(request, "kb_home", lang=lang)
            elif app == "form" and form_id is not None:
                url = path_for(request, "forms_page", form_id=form_id)
                if chosen_language:
                    url += f"?lang={lang}"  # keep the language the visitor chose in the help center
                label = _("Contact us")
            elif app == "chat":
                label, url = _("Chat"), path_for(request, "messenger")
            elif app == "tickets" and signed_in:
                label, url = _("My tickets"), path_for(request, "customer_tickets")
            elif app == "tickets":
                label, url = _("Sign in"), path_for(request, "customer_sign_in")
            else:
                continue
            items.append(NavItem(label, url, app, app == current))
    return SiteNav(items)
