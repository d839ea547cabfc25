"""What ticket values are called on screen, in the current language: one definition for all.

Statuses have two wordings: customers read "pending" as "Waiting for you" (the ball is in their
court), agents as "Pending". Priorities read the same everywhere. `CUSTOMER_LABELS` and
`STAFF_LABELS` are the helpers the portal's and the console's templates call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.i18n import N_, gettext

# Marked for extraction only; translated one at a time when shown.
STATUS_MESSAGES = {
    "open": N_("Open"),
    "pending": N_("Waiting for you"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
}
STAFF_STATUS_MESSAGES = STATUS_MESSAGES | {"pending": N_("Pending")}
PRIORITY_MESSAGES = {
    "low": N_("Low"),
    "normal": N_("Normal"),
    "high": N_("High"),
    "urgent": N_("Urgent"),
}


def _label(messages: dict[str, str], value: str) -> str:
    message = messages.get(value)
    return gettext(message) if message else value


def status_label(value: str) -> str:
    """A ticket status, as the customer sees it; an unknown one is shown as it is."""
    return _label(STATUS_MESSAGES, value)


def staff_status_label(value: str) -> str:
    """A ticket status, in the agent console's wording; an unknown one is shown as it is."""
    return _label(STAFF_STATUS_MESSAGES, value)


def priority_label(value: str) -> str:
    """A priority; an unknown one is shown as it is."""
    return _label(PRIORITY_MESSAGES, value)


def priority_labels() -> dict[str, str]:
    """Every priority with its label, in order: the choices of a form's priority field."""
    return {value: gettext(message) for value, message in PRIORITY_MESSAGES.items()}


def field_value(value: Any) -> str:
    """A custom field's value as text: lists joined, booleans as yes/no, empty as a dash."""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "–"
    if value is None or value == "":
        return "–"
    return str(value)


# The helpers templates call; passed in each page's context.
CUSTOMER_LABELS: dict[str, Callable[[str], str]] = {
    "status_label": status_label,
    "priority_label": priority_label,
}
STAFF_LABELS: dict[str, Callable[[Any], str]] = {
    "status_label": staff_status_label,
    "priority_label": priority_label,
    "field_value": field_value,
}
