"""Mail to customers over SMTP (PORTAL_SMTP_*); without a server, mail is logged instead."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage

from portal.settings import Settings

log = logging.getLogger(__name__)


class Mailer:
    """Sends plain-text mail in a worker thread so the event loop never waits on SMTP."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, body: str, *, sender_name: str = "") -> bool:
        """Send one mail; False (and a log line) when the SMTP server refused or was away."""
        message = EmailMessage()
        message["From"] = (
            f"{sender_name} <{self.settings.mail_from}>"
            if sender_name
            else (self.settings.mail_from)
        )
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        if not self.settings.production:
            log.info("mail to %s: %s\n%s", to, subject, body)
        if not self.settings.smtp_host:
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
            smtp.send_message(message)
