"""Admin page for the tenant settings that have no page of their own (row 18 of issue 8).

Every setting is one row of `GROUPS`: its key in `tenants.settings`, its kind, the default the
code reading it uses (imported from that code, so the page never shows a stale number), its
bounds and its texts. Parsing, validation and the template follow that table, so adding a setting
is adding a row. Saving goes through `core.tenants.update_tenant_settings`, whose `tenant.changed`
event makes every process drop its cached tenant: a change applies from the next request on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.attachments import DEFAULT_DANGEROUS_NAMES, DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT
from portal.core.contract import Capabilities
from portal.customer.links import MAX_LINK_MINUTES, NOTIFICATION_LINK_HOURS, SIGN_IN_MINUTES
from portal.forms.abuse import DEFAULT_IP_LIMIT, DEFAULT_TENANT_LIMIT
from portal.i18n import N_, gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services

MB = 1024 * 1024  # attachments.py counts bytes and shows them as MB of this size

Kind = Literal["int", "choice", "text", "bool"]


@dataclass(frozen=True)
class Setting:
    """One tenant setting. Numbers are bounded in stored units; `scale` is stored per typed unit."""

    key: str
    kind: Kind
    default: Any
    label: str  # marked with N_, translated when the page is shown
    help: str
    minimum: int = 0
    maximum: int = 0  # for "text": the most characters
    scale: int = 1
    choices: tuple[tuple[str, str], ...] = ()  # (stored value, label)


GROUPS: tuple[tuple[str, tuple[Setting, ...]], ...] = (
    (
        N_("Customer portal"),
        (
            Setting(
                "ticket_visibility", "choice", "own", N_("Customers see"),
                N_("An organization's members can see each other's tickets if you allow it."),
                choices=(
                    ("own", N_("Only their own tickets")),
                    ("organization", N_("Their own and their organization's tickets")),
                ),
            ),
            Setting(
                "expected_response", "text", "", N_("Expected response"),
                N_("Shown on open tickets, e.g. “Within one business day”. Empty: not shown."),
                maximum=200,
            ),
            Setting(
                "magic_link_minutes", "int", SIGN_IN_MINUTES,
                N_("Sign-in link lifetime (minutes)"),
                N_("How long the link and code in a sign-in mail work; each works once."),
                minimum=5, maximum=24 * 60,  # a sign-in link is a key lying in a mailbox
            ),
            Setting(
                "notification_link_hours", "int", NOTIFICATION_LINK_HOURS,
                N_("Link lifetime in notification mails (hours)"),
                N_("Mail about a reply links to the ticket and signs the customer in."),
                minimum=1, maximum=MAX_LINK_MINUTES // 60,
            ),
            Setting(
                "customer_notifications", "bool", True,
                N_("Mail customers about replies and status changes"),
                N_("Off: customers see news only when they visit the portal."),
            ),
        ),
    ),
    (
        N_("Attachments"),
        (
            Setting(
                "attachment_max_bytes", "int", DEFAULT_MAX_BYTES, N_("Largest file (MB)"),
                N_("For files sent with web forms, ticket replies and chats."),
                minimum=1 * MB, maximum=25 * MB, scale=MB,  # each file is read into memory
            ),
            Setting(
                "attachment_max_count", "int", DEFAULT_MAX_COUNT, N_("Files per message"),
                N_("How many files one form submission or ticket reply may carry."),
                minimum=1, maximum=20,
            ),
            Setting(
                "attachment_dangerous_names", "choice", DEFAULT_DANGEROUS_NAMES,
                N_("Files with risky names (.html, .svg, .exe …)"),
                N_("Such files could run in a browser or on an agent's computer."),
                choices=(
                    ("rename", N_("Accept them under a harmless name")),
                    ("refuse", N_("Refuse them")),
                ),
            ),
        ),
    ),
    (
        N_("Web forms"),
        (
            Setting(
                "form_ip_limit_per_minute", "int", DEFAULT_IP_LIMIT,
                N_("Submissions per minute from one address"),
                N_("More get “Too many requests” until the minute is over."),
                minimum=1, maximum=1_000,
            ),
            Setting(
                "form_tenant_limit_per_minute", "int", DEFAULT_TENANT_LIMIT,
                N_("Submissions per minute to the whole help desk"),
                N_("Stops a flood from many addresses at once."),
                minimum=1, maximum=100_000,
            ),
        ),
    ),
)  # fmt: skip
SETTINGS = tuple(setting for _, group in GROUPS for setting in group)

# Settings of optional features (`Capabilities`): a backend without the feature shows none.
FEATURE_OF = {
    "ticket_visibility": "organization_tickets",
    "attachment_max_bytes": "attachments",
    "attachment_max_count": "attachments",
    "attachment_dangerous_names": "attachments",
}


def groups_for(capabilities: Capabilities) -> list[tuple[str, tuple[Setting, ...]]]:
    """The groups and settings this backend's features give a meaning to."""
    found = []
    for title, group in GROUPS:
        kept = tuple(
            s for s in group if s.key not in FEATURE_OF or getattr(capabilities, FEATURE_OF[s.key])
        )
        if kept:
            found.append((title, kept))
    return found


INT_RE = re.compile(r"\d{1,9}")
DECIMAL_RE = re.compile(r"\d{1,6}(\.\d{1,12})?")


def _number(setting: Setting, value: Any) -> str:
    """A stored number as the form shows it, in the typed unit (whole MB show without a point)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)  # not a number: shown as it is, so saving asks to correct it
    return format((Decimal(value) / setting.scale).normalize(), "f")


def shown(setting: Setting, settings: dict[str, Any]) -> str:
    """The form's text for a setting: the stored value, else the default the code uses."""
    value = settings.get(setting.key, setting.default)
    if setting.kind == "bool":
        return "" if value is False else "1"  # what the reading code checks (`is False`)
    if setting.kind == "int":
        return _number(setting, value)
    return "" if value is None else str(value)


def typed(setting: Setting, form: FormData) -> str:
    text = form_text(form, setting.key)
    if setting.kind == "bool":
        return "1" if text == "1" else ""
    return text


def check(setting: Setting, text: str) -> tuple[Any, str]:
    """(value to store, "") or (None, the error for the field)."""
    if setting.kind == "bool":
        return text == "1", ""
    if setting.kind == "choice":
        if text in dict(setting.choices):
            return text, ""
        return None, gettext("Choose one of the options.")
    if setting.kind == "text":
        if len(text) <= setting.maximum:
            return text, ""
        return None, gettext("Use at most %(max)d characters.") % {"max": setting.maximum}
    # Decimals only where the typed unit is bigger than the stored one (1.5 MB); a Norwegian
    # admin writes 1,5.
    pattern = DECIMAL_RE if setting.scale > 1 else INT_RE
    text = text.replace(",", ".") if setting.scale > 1 else text
    if pattern.fullmatch(text):
        value = int(round(Decimal(text) * setting.scale))
        if setting.minimum <= value <= setting.maximum:
            return value, ""
    message = (
        gettext("Write a number from %(min)s to %(max)s.")
        if setting.scale > 1
        else gettext("Write a whole number from %(min)s to %(max)s.")
    )
    return None, message % _bounds(setting)


def _bounds(setting: Setting) -> dict[str, str]:
    return {
        "min": _number(setting, setting.minimum),
        "max": _number(setting, setting.maximum),
    }


def parse(
    form: FormData, current: dict[str, Any], groups: list[tuple[str, tuple[Setting, ...]]]
) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """(values as typed, settings to store, errors by field).

    Every field is checked, but only those that differ from what the page showed are stored:
    a setting nobody touched keeps following the code's default, and a stored value the form
    cannot show exactly is not rewritten by an unrelated save.
    """
    values: dict[str, str] = {}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for setting in (s for _, group in groups for s in group):
        text = values[setting.key] = typed(setting, form)
        value, error = check(setting, text)
        if error:
            errors[setting.key] = error
        elif text != shown(setting, current):
            changes[setting.key] = value
    return values, changes, errors


def _rows(
    groups: list[tuple[str, tuple[Setting, ...]]], values: dict[str, str]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The groups and fields in the page's language, with the typed or current values."""
    rows = []
    for title, group in groups:
        fields = []
        for setting in group:
            hint = gettext(setting.help)
            if setting.kind == "int":
                hint += " " + gettext("From %(min)s to %(max)s.") % _bounds(setting)
            fields.append(
                {
                    "key": setting.key,
                    "kind": setting.kind,
                    "label": gettext(setting.label),
                    "hint": hint,
                    "value": values[setting.key],
                    "maxlength": setting.maximum if setting.kind == "text" else 20,
                    "choices": [(value, gettext(label)) for value, label in setting.choices],
                }
            )
        rows.append((gettext(title), fields))
    return rows


def _page(
    request: Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    groups = groups_for(services(request).core.capabilities)
    return admin_page(
        request,
        "admin/settings.html",
        {
            "groups": _rows(groups, values),
            "errors": errors,
            "saved": request.query_params.get("saved") == "1",
            "nav": "settings",
        },
        status_code=status,
    )


@require_agent("admin")
async def settings(request: Request) -> Response:
    """GET: the settings with their current values; POST: check them all, store the changes."""
    core = services(request).core
    # Fresh from the core, not the request's cached tenant: a save is compared with the truth.
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    current = tenant.settings
    if request.method != "POST":
        return _page(request, {s.key: shown(s, current) for s in SETTINGS}, {})
    groups = groups_for(core.capabilities)
    values, changes, errors = parse(await request.form(), current, groups)
    if errors:
        return _page(request, values, errors, 400)
    if changes:
        await core.tenants.update_tenant_settings(tenant.id, changes)
    return redirect_to(request, "admin_settings", "saved=1")
