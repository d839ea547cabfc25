"""Admin pages for the messenger: chat settings, business hours, allowed sites, canned replies."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.admin.auth import admin_page, require_agent
from portal.core.contract import Conflict, NotFound
from portal.i18n import gettext
from portal.messenger.hours import DAYS, PRECHAT_MODES, ChatSettings, HoursError, parse_hours
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services

MAX_CANNED = 5_000
SHORTCUT_RE = re.compile(r"[a-z0-9_-]{1,40}")


def _values(settings: dict[str, Any]) -> dict[str, Any]:
    chat = ChatSettings.from_settings(settings)
    hours = chat.business_hours or {}
    days = hours.get("days") or {}
    return {
        "enabled": chat.enabled,
        "prechat": chat.prechat,
        "answer_timeout": str(chat.answer_timeout_s),
        "timezone": hours.get("timezone", ""),
        **{f"day_{d}": ", ".join(days.get(d, [])) for d in DAYS},
    }


async def _page(
    request: Request, values: dict[str, Any], errors: dict[str, str], status: int = 200
):
    core = services(request).core
    tenant = tenant_of(request)
    return admin_page(
        request,
        "admin/chat.html",
        {
            "values": values,
            "errors": errors,
            "days": DAYS,
            "prechat_modes": PRECHAT_MODES,
            "canned": await core.chat.list_canned_responses(tenant.id),
            "done": request.query_params.get("done", ""),
            "nav": "chat",
        },
        status_code=status,
    )


def _parse(form: FormData) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(values as typed, settings to store, errors by field)."""
    values: dict[str, Any] = {
        k: form_text(form, k) for k in ("prechat", "answer_timeout", "timezone")
    }
    values["enabled"] = form.get("enabled") == "1"
    for day in DAYS:
        values[f"day_{day}"] = form_text(form, f"day_{day}")
    errors: dict[str, str] = {}
    if values["prechat"] not in PRECHAT_MODES:
        errors["prechat"] = gettext("Choose one of the options.")
    timeout = values["answer_timeout"]
    if not timeout.isdigit() or not 10 <= int(timeout) <= 86_400:
        errors["answer_timeout"] = gettext("A number of seconds from 10 to 86400.")
    days = {
        day: [span.strip() for span in values[f"day_{day}"].split(",") if span.strip()]
        for day in DAYS
    }
    hours: dict[str, Any] | None = None
    if any(days.values()):
        hours = {
            "timezone": values["timezone"] or "UTC",
            "days": {d: s for d, s in days.items() if s},
        }
        try:
            parse_hours(hours)
        except HoursError as exc:
            errors["hours"] = gettext("The business hours cannot be read: %(problem)s.") % {
                "problem": str(exc)
            }
    settings = {
        "chat_enabled": values["enabled"],
        "chat_prechat": values["prechat"],
        "chat_answer_timeout_s": int(timeout) if timeout.isdigit() else None,
        "business_hours": hours,
    }
    return values, settings, errors


@require_agent("admin")
async def chat_settings(request: Request) -> Response:
    core = services(request).core
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    if request.method != "POST":
        return await _page(request, _values(tenant.settings), {})
    values, settings, errors = _parse(await request.form())
    if errors:
        return await _page(request, values, errors, 400)
    await core.tenants.update_tenant_settings(tenant.id, settings)
    return _back(request, "settings")


@require_agent("admin")
async def canned_add(request: Request) -> Response:
    form = await request.form()
    shortcut, body = form_text(form, "shortcut").lower(), form_text(form, "body")
    tenant = tenant_of(request)
    errors: dict[str, str] = {}
    if not SHORTCUT_RE.fullmatch(shortcut):
        errors["shortcut"] = gettext("Use 1 to 40 lower-case letters, digits, - or _.")
    if not body or len(body) > MAX_CANNED:
        errors["body"] = gettext("Write the reply (at most 5000 characters).")
    if not errors:
        try:
            await services(request).core.chat.save_canned_response(tenant.id, shortcut, body)
            return _back(request, "canned")
        except Conflict:
            errors["shortcut"] = gettext("That shortcut is taken.")
    core = services(request).core
    fresh = await core.tenants.get_tenant(tenant.slug)
    values = {**_values(fresh.settings), "shortcut": shortcut, "body": body}
    return await _page(request, values, errors, 400)


@require_agent("admin")
async def canned_delete(request: Request) -> Response:
    try:
        await services(request).core.chat.delete_canned_response(
            tenant_of(request).id, request.path_params["id"]
        )
    except NotFound:
        pass  # deleted already: the list shows the truth
    return _back(request, "deleted")


def _back(request: Request, done: str) -> RedirectResponse:
    return redirect_to(request, "admin_chat", f"done={done}")
