"""Mail to customers over SMTP (PORTAL_SMTP_*); without a server, mail is logged instead."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr

from portal.settings import Settings
from portal.text import is_invisible, one_line

log = logging.getLogger(__name__)

# Characters of address syntax: in a display name they could, if anything ever put the name into
# a header unquoted, add or hide an address. Address() quotes them, but a sender name that needs
# them is a lure ("PayPal <security@paypal.com>"), so the admin form refuses them outright.
ADDRESS_SYNTAX = frozenset('<>@,;"')


def unsafe_name_characters(name: str) -> list[str]:
    """The characters a sender name must not have (address syntax, controls, bidi and other
    format characters), each once, in the order they appear in `name`."""
    return list(dict.fromkeys(ch for ch in name if ch in ADDRESS_SYNTAX or is_invisible(ch)))


class Mailer:
    """Sends plain-text mail in a worker thread so the event loop never waits on SMTP."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # PORTAL_MAIL_FROM is an address, but "Help Desk <help@example.com>" is understood too.
        configured_name, address = parseaddr(settings.mail_from)
        self.mail_from = address or settings.mail_from
        self.default_name = configured_name

    def sender(self, sender_name: str = "") -> Address:
        """PORTAL_MAIL_FROM with the name shown for it, quoted or encoded by the email package.

        A name it could not use safely is left out rather than refused: the mail (a sign-in
        link, a reply) matters more than the name, and the admin form already refuses such names.
        """
        name = sender_name.strip() or self.default_name
        if unsafe_name_characters(name):
            log.warning("sender name %r left out of From: it has unsafe characters", name)
            name = ""
        return Address(display_name=name, addr_spec=self.mail_from)

    def build(self, to: str, subject: str, body: str, *, sender_name: str = "") -> EmailMessage:
        """The message; ValueError when `to` is not an address a header can hold."""
        message = EmailMessage()
        message["From"] = self.sender(sender_name)
        message["To"] = to
        # The subject often carries the tenant's name; a line break there would fail the mail.
        message["Subject"] = one_line(subject)
        message.set_content(body)
        return message

    async def send(self, to: str, subject: str, body: str, *, sender_name: str = "") -> bool:
        """Send one mail; False (and a log line) when the SMTP server refused or was away."""
        try:
            message = self.build(to, subject, body, sender_name=sender_name)
        except ValueError:
            log.exception("could not build mail to %r", to)
            return False
        if not self.settings.production:
            log.info("mail to %s: %s\n%s", to, message["Subject"], body)
        if not self.settings.smtp_host:
            if self.settings.production:  # never log a production mail: it may hold a sign-in
                log.warning("mail to %s not sent: set PORTAL_SMTP_HOST", to)
                return False
            return True
        try:
            await asyncio.to_thread(self._deliver, message)
        except (OSError, smtplib.SMTPException):
            log.exception("could not send mail to %s", to)
            return False
        return True

    def _deliver(self, message: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, int(s.smtp_port), timeout=20) as smtp:
            if s.smtp_starttls == "1":
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            # The envelope sender (where bounces go) is always the operator's address, never one
            # derived from the From header.
            smtp.send_message(message, from_addr=self.mail_from)
