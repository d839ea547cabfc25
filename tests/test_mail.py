"""Mail goes through a real SMTP server (aiosmtpd, in-process)."""

from email import message_from_bytes, policy
from email.utils import getaddresses

import pytest

from portal.mail import Mailer, unsafe_name_characters
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


# ------------------------------------------------------------------ hostile sender names
HOSTILE_NAMES = [
    "PayPal Security <security@paypal.com>, Other",
    "Acme\r\nBcc: victim@example.net",
    "Acme\nSubject: urgent",
    'Acme" <evil@example.net>',
    "Acme; x@example.net",
    "Acme\u202eevil",
]


def _mailer(smtp, mail_from: str = "help@acme.test") -> Mailer:
    return Mailer(Settings(smtp_host="127.0.0.1", smtp_port=str(smtp.port), mail_from=mail_from))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_a_hostile_sender_name_is_left_out_and_the_mail_still_goes(smtp, name):
    to = f"n{HOSTILE_NAMES.index(name)}@example.com"
    assert await _mailer(smtp).send(to, f"Sign in to {name}", "body", sender_name=name)
    message = await smtp.wait_for(to)
    assert getaddresses(message.get_all("From")) == [("", "help@acme.test")]
    assert message.get_all("Bcc") is None and message.get_all("To") == [to]
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert smtp.envelope_senders[smtp.messages.index(message)] == "help@acme.test"


async def test_a_harmless_name_is_quoted_or_encoded_never_parsed_as_addresses(smtp):
    name = "Bücher & Co (Oslo)"
    assert await _mailer(smtp).send("b@example.com", "x", "y", sender_name=name)
    message = await smtp.wait_for("b@example.com")
    [(_, address)] = getaddresses(message.get_all("From"))  # as a client reads the raw header
    assert address == "help@acme.test"
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["From"].addresses] == [
        (name, "help@acme.test")
    ]


async def test_the_envelope_sender_is_the_configured_address(smtp):
    mailer = _mailer(smtp, mail_from="Help Desk <help@acme.test>")
    assert await mailer.send("e@example.com", "x", "y", sender_name="Acme")
    message = await smtp.wait_for("e@example.com")
    assert getaddresses(message.get_all("From")) == [("Acme", "help@acme.test")]
    assert smtp.envelope_senders[smtp.messages.index(message)] == "help@acme.test"


def test_unsafe_name_characters_names_each_once():
    assert unsafe_name_characters("Acme Support") == []
    assert unsafe_name_characters("A <b@c>, <d>\r\n") == ["<", "@", ">", ",", "\r", "\n"]
    assert unsafe_name_characters("x\u202ey\u2028") == ["\u202e", "\u2028"]
