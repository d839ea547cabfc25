"""Which optional features a backend has; the apps hide (or answer 404 for) what it lacks.

A third-party help desk behind a remote core may keep tickets but no chat, or tickets without
ratings; the apps read `core.capabilities` instead of finding out by a failed call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond the required domains (tenants, kb, customers, tickets, forms).

    Every feature defaults to present, so `Capabilities(chat=False)` reads as "all but chat".
    """

    # A customer of an organization may see every ticket of that organization.
    organization_tickets: bool = True
    # Customers rate resolved tickets (`rate_ticket`, `get_rating`).
    ratings: bool = True
    # Files on tickets, replies and chat messages.
    attachments: bool = True
    # Live chat: the `chat` domain (conversations, messages, canned responses).
    chat: bool = True

    @classmethod
    def none(cls) -> Capabilities:
        """Only the required domains: the least any backend offers."""
        return cls(organization_tickets=False, ratings=False, attachments=False, chat=False)
