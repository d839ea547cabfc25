"""A form as JSON for the widget: labels in the visitor's language, fields per department."""

from __future__ import annotations

from typing import Any

from portal.attachments import ALLOWED_TYPES, Limits
from portal.core.contract import PRIORITIES, Department, Field, Form
from portal.forms.abuse import HONEYPOT
from portal.forms.validation import ATTACHMENTS, DEPARTMENT, MAX_LENGTH
from portal.i18n import gettext
from portal.labels import priority_labels


def standard_labels() -> dict[str, str]:
    """Labels of the fields every form has, in the current language."""
    return {
        "name": gettext("Your name"),
        "email": gettext("Email address"),
        "subject": gettext("Subject"),
        "description": gettext("Description"),
        "priority": gettext("Priority"),
        DEPARTMENT: gettext("Department"),
        ATTACHMENTS: gettext("Attachments"),
    }


def _field(f: Field, department_id: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": f.key,
        "label": f.label,
        "type": f.type,
        "required": f.required,
        "help_text": f.help_text,
    }
    if f.type in ("choice", "multichoice"):
        data["choices"] = [
            {"value": c.value, "label": c.label} for c in f.choices_for(department_id)
        ]
    return data


def fields_for(form: Form, department_id: int | None) -> list[dict[str, Any]]:
    return [_field(f, department_id) for f in form.fields if f.shown_for(department_id)]


def standard_fields(
    form: Form, departments: list[Department], *, files: bool = True
) -> list[dict[str, Any]]:
    labels = standard_labels()
    fields: list[dict[str, Any]] = [
        {"key": "name", "label": labels["name"], "type": "text", "required": False},
        {"key": "email", "label": labels["email"], "type": "email", "required": True},
    ]
    if form.department_id is None and departments:
        fields.append(
            {
                "key": DEPARTMENT,
                "label": labels[DEPARTMENT],
                "type": "choice",
                "required": True,
                "choices": [{"value": str(d.id), "label": d.name} for d in departments],
            }
        )
    priorities = priority_labels()
    fields += [
        {"key": "subject", "label": labels["subject"], "type": "text", "required": True},
        {
            "key": "description",
            "label": labels["description"],
            "type": "textarea",
            "required": True,
        },
        {
            "key": "priority",
            "label": labels["priority"],
            "type": "choice",
            "required": False,
            "default": "normal",
            "choices": [{"value": p, "label": priorities[p]} for p in PRIORITIES],
        },
    ]
    if files:
        fields.append(
            {"key": ATTACHMENTS, "label": labels[ATTACHMENTS], "type": "file", "required": False}
        )
    for item in fields:
        if item["key"] in MAX_LENGTH:
            item["max_length"] = MAX_LENGTH[item["key"]]
    return fields


def definition(
    form: Form, departments: list[Department], limits: Limits, language: str
) -> dict[str, Any]:
    """Everything the widget needs to draw and send the form (without the tokens and URLs)."""
    choosable = [] if form.department_id is not None else departments
    return {
        "id": form.id,
        "title": form.title,
        "kind": form.kind,
        "language": language,
        "department_id": form.department_id,
        "standard_fields": standard_fields(form, departments, files=limits.max_count > 0),
        # The custom fields to show while no department is chosen (or for the form's own one)...
        "fields": fields_for(form, form.department_id),
        # ...and once the visitor picks one of these departments.
        "departments": [
            {"id": d.id, "name": d.name, "fields": fields_for(form, d.id)} for d in choosable
        ],
        "honeypot": HONEYPOT,
        "attachments": {
            "max_bytes": limits.max_bytes,
            "max_count": limits.max_count,
            "types": sorted(ALLOWED_TYPES),
        },
    }
