"""The branding page: the help desk's name, logo and colour."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.i18n import gettext
from portal.request_helpers import form_text, length_error, redirect_to, tenant_of
from portal.services import services

COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")


def _url_error(url: str) -> str | None:
    if not url:
        return None
    if len(url) > 1000:
        return gettext("Use at most %(max)d characters.") % {"max": 1000}
    message = gettext("Enter an address that starts with https:// or http://, or leave it empty.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return message
    if not url.lower().startswith(("https://", "http://")):
        return message
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return message
    return None if host else message


def _branding_errors(values: dict[str, str]) -> dict[str, str]:
    from portal.mail import unsafe_name_characters

    errors: dict[str, str] = {}
    if error := length_error(values["name"], 1, 200):
        errors["name"] = error
    elif unsafe := unsafe_name_characters(values["name"]):
        # The name is the sender name of the tenant's mail: address syntax there is a phishing
        # lure, and invisible characters (line breaks, bidi overrides) are shown by code point.
        shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in unsafe)
        message = gettext("These characters are not allowed in the name: %(characters)s")
        errors["name"] = message % {"characters": shown}
    if error := _url_error(values["logo_url"]):
        errors["logo_url"] = error
    if not COLOR_RE.fullmatch(values["primary_color"]):
        errors["primary_color"] = gettext(
            "Enter a colour as # and six hexadecimal digits, e.g. #1f6feb."
        )
    return errors


@require_agent("admin")
async def branding(request: Request) -> Response:
    core = services(request).core
    # Read the tenant afresh: the one on the request may come from the resolver's short cache.
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    if request.method != "POST":
        values = {
            "name": tenant.name,
            "logo_url": tenant.logo_url,
            "primary_color": tenant.primary_color,
        }
        return admin_page(
            request,
            "admin/branding.html",
            {"values": values, "errors": {}, "saved": request.query_params.get("saved") == "1"},
        )
    form = await request.form()
    values = {key: form_text(form, key) for key in ("name", "logo_url", "primary_color")}
    errors = _branding_errors(values)
    if errors:
        return admin_page(
            request, "admin/branding.html", {"values": values, "errors": errors}, status_code=400
        )
    await core.tenants.update_branding(
        tenant.id,
        name=values["name"],
        logo_url=values["logo_url"],
        primary_color=values["primary_color"].lower(),
    )
    return redirect_to(request, "admin_branding", "saved=1")
