"""/admin/widget: the web widget's settings with a live preview, and the snippet to paste.

Every field of `WidgetSettings` but `require_identity` (on the identity page, with the keys).
Like the other admin forms: per-field errors with a 400 and the typed values kept, nothing
saved while any field is wrong, and a 303 back with a notice when all is saved.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.core.contract import Form
from portal.i18n import gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services
from portal.urls import absolute, path_for
from portal.widget.settings import (
    APPS,
    AWAY_MODES,
    MAX_GREETING,
    MAX_LABEL,
    MAX_OFFSET,
    MAX_Z_INDEX,
    POSITIONS,
    WidgetSettings,
)

# Edited on its own page (identity and keys); a save here must not change it.
ELSEWHERE = "widget_require_identity"


def _values(settings: WidgetSettings) -> dict[str, Any]:
    """The form's values as the page shows them."""
    return {
        "apps": list(settings.apps),
        "position": settings.position,
        "offset_x": str(settings.offset_x),
        "offset_y": str(settings.offset_y),
        "z_index": str(settings.z_index),
        "label": settings.label,
        "greeting": settings.greeting,
        "form_id": str(settings.form_id or ""),
        "away": settings.away,
    }


def _number(value: str, high: int) -> int | None:
    return int(value) if value.isdigit() and int(value) <= high else None


def _parse(
    form: FormData, forms: list[Form], current: WidgetSettings
) -> tuple[dict[str, Any], WidgetSettings | None, dict[str, str]]:
    """(values as typed, the settings to store or None, errors by field)."""
    names = ("position", "offset_x", "offset_y", "z_index", "label", "greeting", "form_id", "away")
    values: dict[str, Any] = {name: form_text(form, name) for name in names}
    chosen = [a for a in form.getlist("apps") if isinstance(a, str)]
    values["apps"] = chosen
    errors: dict[str, str] = {}
    if not chosen or any(a not in APPS for a in chosen):
        errors["apps"] = gettext("Choose at least one app.")
    for name, allowed in (("position", POSITIONS), ("away", AWAY_MODES)):
        if values[name] not in allowed:
            errors[name] = gettext("Choose one of the options.")
    numbers: dict[str, int] = {}
    for name, high in (
        ("offset_x", MAX_OFFSET),
        ("offset_y", MAX_OFFSET),
        ("z_index", MAX_Z_INDEX),
    ):
        number = _number(values[name], high)
        if number is None:
            errors[name] = gettext("A whole number from 0 to %(max)d.") % {"max": high}
        else:
            numbers[name] = number
    for name, limit in (("label", MAX_LABEL), ("greeting", MAX_GREETING)):
        values[name] = " ".join(values[name].split())  # one line, as the widget shows it
        if len(values[name]) > limit:
            errors[name] = gettext("At most %(num)d characters.") % {"num": limit}
    form_id: int | None = None
    if values["form_id"]:
        form_id = next((f.id for f in forms if str(f.id) == values["form_id"]), None)
        if form_id is None:
            errors["form_id"] = gettext("Choose one of the options.")
    if errors:
        return values, None, errors
    settings = WidgetSettings(
        apps=tuple(a for a in APPS if a in chosen),
        position=values["position"],
        offset_x=numbers["offset_x"],
        offset_y=numbers["offset_y"],
        z_index=numbers["z_index"],
        label=values["label"],
        greeting=values["greeting"],
        form_id=form_id,
        away=values["away"],
        require_identity=current.require_identity,
    )
    return values, settings, {}


def snippets(request: Request) -> dict[str, str]:
    """The snippet to paste, its nonce variant, and the CSP directives a strict site adds."""
    origin = absolute(request, "")
    loader = origin + path_for(request, "widget_loader")
    queue = (
        "window.PortalWidget=window.PortalWidget||"
        "function(){(PortalWidget.q=PortalWidget.q||[]).push(arguments)}"
    )
    nonce = ' nonce="YOUR-NONCE"'
    return {
        "plain": f'<script>{queue}</script>\n<script async src="{loader}"></script>',
        "nonce": (
            f'<script{nonce}>{queue}</script>\n<script{nonce} async src="{loader}"></script>'
        ),
        # The loader styles its launcher with a constructable stylesheet: no style-src change.
        "csp": (
            f"script-src {origin} 'nonce-YOUR-NONCE';\nframe-src {origin};\nconnect-src {origin};"
        ),
    }


async def _page(
    request: Request,
    values: dict[str, Any],
    errors: dict[str, str],
    forms: list[Form],
    status: int = 200,
) -> Response:
    return admin_page(
        request,
        "admin/widget.html",
        {
            "values": values,
            "errors": errors,
            "tenant_forms": forms,
            "apps": APPS,
            "snippets": snippets(request),
            "limits": {"offset": MAX_OFFSET, "z_index": MAX_Z_INDEX, "label": MAX_LABEL},
            "max_greeting": MAX_GREETING,
            "done": request.query_params.get("done") == "1",
            "nav": "widget",
        },
        status_code=status,
    )


@require_agent("admin")
async def widget_settings(request: Request) -> Response:
    core = services(request).core
    # Fresh from the core, not the resolver's cached tenant: the form must show what is stored.
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    forms = await core.forms.list_forms(tenant.id)
    current = WidgetSettings.for_tenant(tenant)
    if request.method != "POST":
        return await _page(request, _values(current), {}, forms)
    values, settings, errors = _parse(await request.form(), forms, current)
    if settings is None:
        return await _page(request, values, errors, forms, 400)
    changes = {k: v for k, v in settings.as_settings().items() if k != ELSEWHERE}
    await core.tenants.update_tenant_settings(tenant.id, changes)
    return redirect_to(request, "admin_widget", "done=1")
