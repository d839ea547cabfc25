"""Translated ticket statuses and field values, in the agent console's wording."""

from __future__ import annotations

from typing import Any

from portal.templating import gettext


def status_label(status: str) -> str:
    """The status in the page's language; an unknown status is shown as it is."""
    labels = {
        "open": gettext("Open"),
        "pending": gettext("Pending"),
        "resolved": gettext("Resolved"),
        "closed": gettext("Closed"),
    }
    return labels.get(status, status)


def field_value(value: Any) -> str:
    """A custom field's value as text: lists joined, booleans as yes/no, empty as a dash."""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "–"
    if value is None or value == "":
        return "–"
    return str(value)
