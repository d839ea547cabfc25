"""Server-side validation of a form submission: the authority on what a ticket may contain.

Pure functions: given a `Form`, the tenant's departments, the submitted values (every name maps
to the list of strings sent for it) and the uploaded files (already read, at most the tenant's
size limit plus one byte each), `validate` returns the cleaned submission or per-field errors.
Messages go through `gettext`, so they come out in the request's language (the visitor's);
files are checked by the upload policy of `portal.attachments`. Values of fields the chosen
department does not show, and files sent for them, are ignored; choice values of other
departments are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from portal.attachments import Limits, Upload, refusals, stored_filename
from portal.core.contract import PRIORITIES, Department, Field, Form
from portal.emails import MAX_LENGTH as EMAIL_MAX_LENGTH
from portal.emails import clean_email
from portal.i18n import gettext
from portal.text import clean_name

ATTACHMENTS = "attachments"  # the name of the form's general file input
DEPARTMENT = "department_id"

MAX_LENGTH = {
    "name": 200,
    "email": EMAIL_MAX_LENGTH,
    "subject": 300,
    "description": 20_000,
    "text": 1000,
    "textarea": 10_000,
}
CHECKED = {"on", "1", "true", "yes"}
_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Submission:
    """A valid submission, ready to become a TicketDraft."""

    name: str
    email: str
    subject: str
    description: str
    priority: str
    department_id: int | None
    custom_fields: dict[str, Any]
    uploads: tuple[Upload, ...] = ()


@dataclass
class Outcome:
    """`submission` when valid, else `errors` (field name -> message); `values` to show again."""

    submission: Submission | None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ helpers
def _first(data: Mapping[str, Sequence[str]], name: str) -> str:
    values = data.get(name) or ()
    return values[0] if values else ""


def _single_line(value: str) -> str:
    return " ".join(_CONTROL_RE.sub("", value).split())


def _multi_line(value: str) -> str:
    return _CONTROL_RE.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()


def _too_long(value: str, maximum: int) -> str | None:
    if len(value) > maximum:
        return gettext("Use at most %(max)d characters.") % {"max": maximum}
    return None


def _required() -> str:
    return gettext("This field is required.")


def choose_department(
    form: Form, departments: Sequence[Department], raw: str
) -> tuple[int | None, str | None]:
    """The department a submission goes to, and an error when the visitor must pick one."""
    if form.department_id is not None:
        return form.department_id, None
    if not departments:
        return None, None
    raw = raw.strip()
    if not raw:
        return None, gettext("Choose a department.")
    ids = {d.id for d in departments}
    if raw.isdigit() and len(raw) < 12 and int(raw) in ids:
        return int(raw), None
    return None, gettext("Choose one of the listed options.")


def shown_fields(form: Form, department_id: int | None) -> list[Field]:
    return [f for f in form.fields if f.shown_for(department_id)]


# ------------------------------------------------------------------ custom fields
def _clean_custom(
    f: Field, raw: Sequence[str], department_id: int | None
) -> tuple[Any, str | None, Any]:
    """(cleaned value, error, value to show again) for one custom field that is not a file."""
    first = raw[0] if raw else ""
    if f.type in ("text", "textarea"):
        value = _single_line(first) if f.type == "text" else _multi_line(first)
        if not value:
            return None, _required() if f.required else None, value
        return value, _too_long(value, MAX_LENGTH[f.type]), value
    if f.type == "number":
        value = first.strip()
        if not value:
            return None, _required() if f.required else None, value
        if len(value) > 30 or not _NUMBER_RE.fullmatch(value):
            return None, gettext("Enter a number, like 42 or 3.5."), value
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None, gettext("Enter a number, like 42 or 3.5."), value
        cleaned: int | float = (
            int(number) if number == number.to_integral_value() else float(number)
        )
        return cleaned, None, value
    if f.type == "date":
        value = first.strip()
        if not value:
            return None, _required() if f.required else None, value
        try:
            if not _DATE_RE.fullmatch(value):
                raise ValueError
            day = date.fromisoformat(value)
        except ValueError:
            return None, gettext("Enter a date as YYYY-MM-DD, like 2024-05-31."), value
        return day.isoformat(), None, value
    allowed = {c.value for c in f.choices_for(department_id)}
    if f.type == "choice":
        value = first.strip()
        if not value:
            return None, _required() if f.required else None, value
        if value not in allowed:
            return None, gettext("Choose one of the listed options."), value
        return value, None, value
    if f.type == "multichoice":
        picked = list(dict.fromkeys(v.strip() for v in raw if v.strip()))
        if not picked:
            return [], _required() if f.required else None, picked
        if any(v not in allowed for v in picked):
            return None, gettext("Choose one of the listed options."), picked
        return picked, None, picked
    if f.type == "checkbox":
        checked = first.strip().lower() in CHECKED
        if f.required and not checked:
            return False, gettext("Check this box to continue."), checked
        return checked, None, checked
    return None, None, first  # unknown types are ignored


# ------------------------------------------------------------------ the whole form
def validate(
    form: Form,
    departments: Sequence[Department],
    data: Mapping[str, Sequence[str]],
    uploads: Sequence[Upload],
    limits: Limits,
) -> Outcome:
    """Check a submission against the form; see the module docstring."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}

    name = clean_name(_first(data, "name"))
    values["name"] = name
    if error := _too_long(name, MAX_LENGTH["name"]):
        errors["name"] = error

    raw_email = _first(data, "email").strip()
    values["email"] = raw_email
    email = clean_email(raw_email) if raw_email else None
    if not raw_email:
        errors["email"] = _required()
    elif email is None:
        errors["email"] = gettext("Enter a valid email address, like name@example.com.")

    subject = _single_line(_first(data, "subject"))
    values["subject"] = subject
    if not subject:
        errors["subject"] = _required()
    elif error := _too_long(subject, MAX_LENGTH["subject"]):
        errors["subject"] = error

    description = _multi_line(_first(data, "description"))
    values["description"] = description
    if not description:
        errors["description"] = _required()
    elif error := _too_long(description, MAX_LENGTH["description"]):
        errors["description"] = error

    priority = _first(data, "priority").strip() or "normal"
    values["priority"] = priority
    if priority not in PRIORITIES:
        errors["priority"] = gettext("Choose one of the listed options.")

    raw_department = _first(data, DEPARTMENT)
    department_id, error = choose_department(form, departments, raw_department)
    values[DEPARTMENT] = str(department_id) if department_id is not None else raw_department
    if error:
        errors[DEPARTMENT] = error

    fields = shown_fields(form, department_id)
    file_keys = {f.key for f in fields if f.type == "file"}
    kept = [u for u in uploads if u.field == ATTACHMENTS or u.field in file_keys]
    errors.update(refusals(kept, limits, count_field=ATTACHMENTS))

    custom: dict[str, Any] = {}
    for f in fields:
        if f.type == "file":
            # The names the files are stored under (a renamed page.html is page.html.txt).
            names = [stored_filename(u.filename, u.content_type) for u in kept if u.field == f.key]
            if not names and f.required:
                errors.setdefault(f.key, gettext("Attach a file."))
            if names:
                custom[f.key] = names
            continue
        value, error, shown = _clean_custom(f, data.get(f.key) or (), department_id)
        values[f.key] = shown
        if error:
            errors[f.key] = error
        elif f.type == "checkbox":
            custom[f.key] = bool(value)
        elif value is not None and value != []:
            custom[f.key] = value

    if errors:
        return Outcome(None, errors, values)
    submission = Submission(
        name=name,
        email=email or "",
        subject=subject,
        description=description,
        priority=priority,
        department_id=department_id,
        custom_fields=custom,
        uploads=tuple(kept),
    )
    return Outcome(submission, {}, values)
