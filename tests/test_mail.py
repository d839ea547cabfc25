"""Mail goes through a real SMTP server (aiosmtpd, in-process)."""

from portal.mail import Mailer
from portal.settings import Settings


async def test_mail_reaches_the_smtp_server(smtp):
    mailer = Mailer(
        Settings(smtp_host="127.0.0.1", smtp_port=str(smtp.port), mail_from="help@acme.test")
    )
    assert await mailer.send(
        "pat@example.com", "Sign in", "Your link: https://x", sender_name="Acme"
    )
    message = await smtp.wait_for("pat@example.com")
    assert message["To"] == "pat@example.com" and "Acme" in message["From"]
    assert "https://x" in message.get_payload()


async def test_an_unreachable_server_is_reported_not_raised():
    mailer = Mailer(Settings(smtp_host="127.0.0.1", smtp_port="1"))
    assert await mailer.send("pat@example.com", "x", "y") is False
