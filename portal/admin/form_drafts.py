"""The form builder's HTML form as data: rows of fields, choices as text, a FormDraft.

A form's custom fields are edited as rows of one HTML form, so it works without JavaScript:
every existing field is a row, plus a few blank rows for new fields; a row left blank (or marked
"Remove") is dropped, and the order of the rows is the order of the fields. Choices are written
one per line as `value|label|departments`, where the label defaults to the value and the
departments (names or numbers, separated by commas) default to every department.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData

from portal.core.contract import (
    FIELD_TYPES,
    STANDARD_FIELDS,
    Choice,
    Department,
    Field,
    Form,
    FormDraft,
)
from portal.forms.abuse import HONEYPOT
from portal.i18n import gettext
from portal.request_helpers import form_text

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,49}")
RESERVED_KEYS = frozenset(
    {
        *STANDARD_FIELDS,
        "department_id",
        "attachments",
        "form_token",
        "idempotency_key",
        "csrf_token",
        "visit_key",
        "embed",
        "lang",
        HONEYPOT,
    }
)
KINDS = ("ticket", "task")
BLANK_ROWS = 3
MAX_ROWS = 100
ROW_KEYS = ("key", "label", "type", "help", "choices")


def _department_ref(department: Department, departments: list[Department]) -> str:
    """How a department is written in a choice line: its name when that is unambiguous."""
    name = department.name
    same = [d for d in departments if d.name.casefold() == name.casefold()]
    if len(same) == 1 and name and not name.isdigit() and not set(name) & {",", "|"}:
        return name
    return str(department.id)


def choices_text(field: Field, departments: list[Department]) -> str:
    by_id = {d.id: d for d in departments}
    lines = []
    for choice in field.options:
        refs = [
            _department_ref(by_id[i], departments) if i in by_id else str(i)
            for i in choice.department_ids
        ]
        if refs:
            lines.append(f"{choice.value}|{choice.label}|{','.join(refs)}")
        elif choice.label != choice.value:
            lines.append(f"{choice.value}|{choice.label}")
        else:
            lines.append(choice.value)
    return "\n".join(lines)


def _find_department(ref: str, departments: list[Department]) -> int | None:
    if ref.isdigit():
        for d in departments:
            if str(d.id) == ref:
                return d.id
    matches = [d.id for d in departments if d.name.casefold() == ref.casefold()]
    return matches[0] if len(matches) == 1 else None


def parse_choices(
    text: str, departments: list[Department]
) -> tuple[tuple[Choice, ...], str | None]:
    """Choices from `value|label|dept,dept` lines, or the first problem found."""
    choices: list[Choice] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 3 or not parts[0]:
            return (), gettext("Line %(line)d: write value|label|departments.") % {"line": number}
        value = parts[0]
        label = parts[1] if len(parts) > 1 and parts[1] else value
        if len(value) > 100 or len(label) > 200:
            return (), gettext("Line %(line)d is too long.") % {"line": number}
        if value in seen:
            return (), gettext("Line %(line)d repeats the value “%(value)s”.") % {
                "line": number,
                "value": value,
            }
        seen.add(value)
        ids: list[int] = []
        refs = parts[2] if len(parts) > 2 else ""
        for ref in (r.strip() for r in refs.split(",")):
            if not ref:
                continue
            department_id = _find_department(ref, departments)
            if department_id is None:
                return (), gettext("Line %(line)d: there is no department “%(name)s”.") % {
                    "line": number,
                    "name": ref,
                }
            if department_id not in ids:
                ids.append(department_id)
        choices.append(Choice(value, label, tuple(ids)))
    return tuple(choices), None


def _row_values(field: Field | None, departments: list[Department]) -> dict[str, Any]:
    if field is None:
        return {
            "key": "",
            "label": "",
            "type": "text",
            "required": False,
            "help": "",
            "choices": "",
            "departments": [],
        }
    return {
        "key": field.key,
        "label": field.label,
        "type": field.type,
        "required": field.required,
        "help": field.help_text,
        "choices": choices_text(field, departments),
        "departments": [str(i) for i in field.department_ids],
    }


def form_values(form: Form | None, departments: list[Department]) -> dict[str, Any]:
    fields = list(form.fields) if form else []
    return {
        "title": form.title if form else "",
        "department_id": str(form.department_id or "") if form else "",
        "kind": form.kind if form else "ticket",
        "rows": [_row_values(f, departments) for f in fields]
        + [_row_values(None, departments) for _ in range(BLANK_ROWS)],
    }


def _submitted_rows(data: FormData) -> list[dict[str, Any]]:
    try:
        count = min(int(form_text(data, "rows") or "0"), MAX_ROWS)
    except ValueError:
        count = 0
    rows = []
    for i in range(count):
        prefix = f"field-{i}-"
        choices = data.get(prefix + "choices")
        rows.append(
            {
                "key": form_text(data, prefix + "key"),
                "label": form_text(data, prefix + "label"),
                "type": form_text(data, prefix + "type") or "text",
                "required": data.get(prefix + "required") is not None,
                "help": form_text(data, prefix + "help"),
                "choices": choices.replace("\r\n", "\n").strip()
                if isinstance(choices, str)
                else "",
                "departments": [
                    v for v in data.getlist(prefix + "departments") if isinstance(v, str)
                ],
                "remove": data.get(prefix + "remove") is not None,
            }
        )
    return rows


def _blank(row: dict[str, Any]) -> bool:
    return not (row["key"] or row["label"] or row["help"] or row["choices"])


def parse_form(
    data: FormData, departments: list[Department]
) -> tuple[FormDraft | None, dict[str, str], dict[str, Any]]:
    """The draft, the errors (by input name) and the values to show again."""
    errors: dict[str, str] = {}
    title = form_text(data, "title")
    raw_department = form_text(data, "department_id")
    kind = form_text(data, "kind") or "ticket"
    rows = [row for row in _submitted_rows(data) if not row["remove"] and not _blank(row)]
    values = {
        "title": title,
        "department_id": raw_department,
        "kind": kind,
        "rows": rows + [_row_values(None, departments) for _ in range(BLANK_ROWS)],
    }
    if not title:
        errors["title"] = gettext("This field is required.")
    elif len(title) > 200:
        errors["title"] = gettext("Use at most %(max)d characters.") % {"max": 200}
    department_id: int | None = None
    if raw_department:
        department_id = next((d.id for d in departments if str(d.id) == raw_department), None)
        if department_id is None:
            errors["department_id"] = gettext("Choose one of the listed options.")
    if kind not in KINDS:
        errors["kind"] = gettext("Choose one of the listed options.")
    department_ids = {str(d.id): d.id for d in departments}
    fields: list[Field] = []
    keys: set[str] = set()
    for i, row in enumerate(rows):
        name = f"field-{i}-"
        key = row["key"]
        if not key:
            errors[name + "key"] = gettext("This field is required.")
        elif not KEY_RE.fullmatch(key):
            errors[name + "key"] = gettext(
                "Start with a small letter a-z; then use only a-z, digits and _ (at most 50)."
            )
        elif key in RESERVED_KEYS:
            errors[name + "key"] = gettext("Every form has a field with this key already.")
        elif key in keys:
            errors[name + "key"] = gettext("Another field of this form uses this key.")
        keys.add(key)
        if not row["label"]:
            errors[name + "label"] = gettext("This field is required.")
        elif len(row["label"]) > 200:
            errors[name + "label"] = gettext("Use at most %(max)d characters.") % {"max": 200}
        if row["type"] not in FIELD_TYPES:
            errors[name + "type"] = gettext("Choose one of the listed options.")
        if len(row["help"]) > 500:
            errors[name + "help"] = gettext("Use at most %(max)d characters.") % {"max": 500}
        shown_for = []
        for raw in row["departments"]:
            if raw not in department_ids:
                errors[name + "departments"] = gettext("Choose one of the listed options.")
                break
            shown_for.append(department_ids[raw])
        options: tuple[Choice, ...] = ()
        if row["type"] in ("choice", "multichoice"):
            options, problem = parse_choices(row["choices"], departments)
            if problem:
                errors[name + "choices"] = problem
            elif not options:
                errors[name + "choices"] = gettext("Add at least one choice.")
        fields.append(
            Field(
                key=key,
                label=row["label"],
                type=row["type"],
                required=row["required"],
                help_text=row["help"],
                options=options,
                department_ids=tuple(shown_for),
            )
        )
    if errors:
        return None, errors, values
    return FormDraft(title, department_id, kind, tuple(fields)), errors, values
