"""Translated names of ticket fields shared by the customer portal and the agent console."""

from __future__ import annotations

from portal.templating import N_, gettext

# Marked for extraction only; translated one at a time when shown.
PRIORITY_MESSAGES = {
    "low": N_("Low"),
    "normal": N_("Normal"),
    "high": N_("High"),
    "urgent": N_("Urgent"),
}


def priority_label(value: str) -> str:
    """The priority in the page's language; an unknown one is shown as it is."""
    message = PRIORITY_MESSAGES.get(value)
    return gettext(message) if message else value
