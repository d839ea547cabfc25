"""A chat conversation written out as a ticket: its transcript, subject and files."""

from __future__ import annotations

from typing import Any

from portal.core.contract import Attachment, AttachmentDraft, ChatMessage, TicketDraft

SUBJECT_LENGTH = 200
DEFAULT_NAMES = {"visitor": "Visitor", "agent": "Agent", "system": "System"}


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def drafts_of(attachments: tuple[Attachment, ...]) -> tuple[AttachmentDraft, ...]:
    """The stored files again, to be attached to a ticket or reply as well."""
    return tuple(
        AttachmentDraft(a.filename, a.content_type, a.size, a.storage_key) for a in attachments
    )


def ticket_draft(conversation: Any, transcript: list[ChatMessage]) -> TicketDraft:
    """The ticket a conversation (its row) becomes: the transcript is the description."""
    lines = []
    for message in transcript:
        name = message.author_name or (
            conversation.visitor_name if message.author_type == "visitor" else ""
        )
        text = message.body
        if message.attachments:
            text += "".join(f" [{a.filename}]" for a in message.attachments)
        lines.append(f"{name or DEFAULT_NAMES[message.author_type]}: {text.strip()}")
    first = next((m.body for m in transcript if m.author_type == "visitor"), "")
    subject = conversation.subject or first_line(first)[:SUBJECT_LENGTH] or "Chat"
    return TicketDraft(
        subject=subject,
        description="\n".join(lines),
        requester_email=conversation.visitor_email,
        requester_name=conversation.visitor_name,
        source="chat",
        attachments=tuple(a for m in transcript for a in drafts_of(m.attachments)),
    )
