"""Translated names of ticket fields shared by the customer portal and the agent console."""

from __future__ import annotations

from portal.templating import N_, gettext

# Marked for extraction only; translated one at a time when shown.
STATUS_MESSAGES = {
    "open": N_("Open"),
    "pending": N_("Waiting for you"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
}
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
    """A ticket status, as the customer sees it, in the page's language."""
    return _label(STATUS_MESSAGES, value)


def priority_label(value: str) -> str:
    """The priority in the page's language; an unknown one is shown as it is."""
    return _label(PRIORITY_MESSAGES, value)
