"""Translated names of ticket fields shared by the customer portal and the agent console."""

from __future__ import annotations

from portal.templating import gettext


def priority_label(priority: str) -> str:
    """The priority in the page's language; an unknown one is shown as it is."""
    labels = {
        "low": gettext("Low"),
        "normal": gettext("Normal"),
        "high": gettext("High"),
        "urgent": gettext("Urgent"),
    }
    return labels.get(priority, priority)
