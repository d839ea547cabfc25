"""The texts the messenger's scripts show, translated on the server in the request's language."""

from __future__ import annotations

from portal.i18n import gettext as _


def _shared() -> dict[str, str]:
    return {
        "connecting": _("Connecting…"),
        "offline": _("Connection lost. Reconnecting…"),
        "sending": _("Sending…"),
        "not_sent": _("Not sent."),
        "retry": _("Retry"),
        "seen": _("Seen"),
        "typing": _("%(name)s is typing…"),
        "agent": _("Agent"),
        "conversation_number": _("Conversation %(id)s"),
        "status_open": _("Open"),
        "status_closed": _("Ended"),
        "rate_limited": _("You are sending too fast. Please wait a moment."),
        "wait_uploads": _("Please wait until your files are uploaded."),
        "uploading": _("Uploading %(name)s…"),
        "remove_file": _("Remove %(name)s"),
        "upload_failed": _("The file could not be uploaded."),
        "file_too_large": _("This file is too large."),
        "file_type_refused": _("This type of file cannot be sent."),
    }


def visitor_strings() -> dict[str, str]:
    """Texts of the visitor's chat page, keyed as `static/messenger/messenger.js` uses them."""
    return {
        **_shared(),
        "you": _("You"),
        "intro": _("Ask us anything. We answer right here."),
        "waiting_for_agent": _("We will be with you shortly."),
        "status_waiting": _("Waiting for an answer"),
        "not_available": _("The chat is not available on this site."),
        "outside_hours": _("We are closed right now. Leave your email and we will answer by mail."),
        "no_agents": _(
            "Nobody is available right now. Leave your email and we will answer by mail."
        ),
        "no_answer": _("Sorry for the wait. Leave your email and we will answer by mail."),
        "ticketed": _("We have made request #%(number)s from this chat and will answer by email."),
        "start_failed": _("The chat could not start. Please check your details and try again."),
        "start_unavailable": _(
            "Chat is not available right now. Please try again in a few minutes, "
            "or leave us a message with the contact form."
        ),
        "contact_saved": _("Thank you. We will answer by email."),
        "email_hint_contact": _("Where can we answer you?"),
        "email_hint_transcript": _("Where should we send the transcript?"),
        "email_invalid": _("Please check the email address."),
        "transcript_sending": _("Sending the transcript…"),
        "transcript_sent": _("The transcript is on its way."),
        "transcript_failed": _("The transcript could not be sent. Please try again later."),
    }


def agent_strings() -> dict[str, str]:
    """Texts of the agent console's chat inbox, keyed as `static/agent/chats.js` uses them."""
    return {
        **_shared(),
        "note": _("Internal note"),
        "online": _("Online"),
        "away": _("Away"),
        "visitor": _("Visitor"),
        "me": _("Me (%(name)s)"),
        "unassigned": _("Unassigned"),
        "status_waiting": _("Waiting"),
        "online_count": _("Agents online: %(count)s"),
        "open_ticket": _("Open the ticket"),
        "unread": _("Unread"),
        "action_failed": _("That did not work. Please try again."),
        "signed_out": _("You are signed out. Reload the page to sign in again."),
    }
