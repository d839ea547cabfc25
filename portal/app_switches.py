"""Each customer app switched on or off for a tenant (`/admin/apps`).

A switched-off app is gone, not broken: its routes answer 404 (links kept from before find
nothing), and the widget's panel and the sites' navigation leave it out. The knowledge base, the
messenger and the customer portal are switched as a whole (tenant setting `apps_off`), each form
on its own (`forms_off`, form ids). Chat also has its own on/off in the chat settings, which
keeps the messenger's page (it says chat is closed); switching the app off removes the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.capabilities import refuse, wrapped_by
from portal.core.contract import Tenant

SWITCHED_APPS = ("kb", "chat", "tickets")  # switched as a whole; forms one by one

# The routes of each app, by route name (the templates' `url_for` keeps names stable).
APP_ROUTES: dict[str, frozenset[str]] = {
    "kb": frozenset(
        {
            "kb_root",
            "kb_home",
            "kb_search",
            "kb_search_json",
            "kb_category",
            "kb_article",
            "kb_feedback",
            "sitemap",
            "widget_article",
        }
    ),
    "chat": frozenset(
        {"messenger", "messenger_token", "messenger_upload", "messenger_attachment", "messenger_ws"}
    ),
    "tickets": frozenset(
        {
            "customer_home",
            "customer_home_slash",
            "customer_sign_in",
            "customer_sign_in_code",
            "customer_magic_link",
            "customer_sign_out",
            "customer_sign_out_everywhere",
            "customer_tickets",
            "customer_ticket",
            "customer_reply",
            "customer_rate_ticket",
            "customer_ticket_events",
            "customer_attachment",
            "customer_rate_link",
        }
    ),
    "form": frozenset(
        {
            "forms_page",
            "forms_submit",
            "forms_thanks",
            "forms_api_form",
            "forms_api_submit",
            "forms_api_suggestions",
            "forms_api_deflections",
        }
    ),
}


@dataclass(frozen=True)
class AppSwitches:
    """Which of a tenant's apps are off. Reading never fails: junk reads as "on"."""

    apps_off: frozenset[str] = frozenset()
    forms_off: frozenset[int] = frozenset()

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> AppSwitches:
        return cls.from_settings(tenant.settings)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> AppSwitches:
        apps, forms = settings.get("apps_off"), settings.get("forms_off")
        return cls(
            frozenset(a for a in apps if a in SWITCHED_APPS)
            if isinstance(apps, list)
            else frozenset(),
            frozenset(f for f in forms if type(f) is int)
            if isinstance(forms, list)
            else frozenset(),
        )

    def app_on(self, app: str) -> bool:
        return app not in self.apps_off

    def form_on(self, form_id: int) -> bool:
        return form_id not in self.forms_off

    def switched(self, app: str, on: bool) -> dict[str, Any]:
        """The settings change that switches `app` on or off."""
        off = self.apps_off - {app} if on else self.apps_off | {app}
        return {"apps_off": sorted(off)}

    def form_switched(self, form_id: int, on: bool) -> dict[str, Any]:
        off = self.forms_off - {form_id} if on else self.forms_off | {form_id}
        return {"forms_off": sorted(off)}


def app_on(tenant: Tenant, app: str) -> bool:
    """Whether `app` is on for `tenant`; for every request of the app, so no object is made."""
    off = tenant.settings.get("apps_off")
    return not (isinstance(off, list) and app in off)


def form_on(tenant: Tenant, form_id: int) -> bool:
    """Whether the form is on for `tenant`, as `app_on` (every submission asks); only whole
    numbers in the list count, as in `AppSwitches`."""
    off = tenant.settings.get("forms_off")
    return not (isinstance(off, list) and any(type(f) is int and f == form_id for f in off))


class SwitchGate:
    """A route's app behind its tenant's switch: 404 while the app (or the form) is off."""

    def __init__(self, app: ASGIApp, switched: str) -> None:
        self.app = app
        self.switched = switched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant: Tenant | None = scope.get("state", {}).get("tenant")
        if tenant is not None and tenant.settings and not self._on(tenant, scope):
            await refuse(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _on(self, tenant: Tenant, scope: Scope) -> bool:
        if self.switched != "form":
            return app_on(tenant, self.switched)
        form_id = scope.get("path_params", {}).get("form_id")
        return not isinstance(form_id, int) or form_on(tenant, form_id)


def gate_switched_routes(routes: Iterable[BaseRoute]) -> None:
    """Make every route of `APP_ROUTES` (in mounts too) answer 404 while its app is off."""
    for route in routes:
        if isinstance(route, Mount):
            gate_switched_routes(route.routes)
        elif isinstance(route, Route | WebSocketRoute):
            app = next((a for a, names in APP_ROUTES.items() if route.name in names), None)
            # Route objects are module-level, shared by every app made in this process.
            if app is not None and not wrapped_by(route.app, SwitchGate):
                route.app = SwitchGate(route.app, app)
