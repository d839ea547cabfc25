"""Email addresses people type (forms, chat, sign-in, the widget's identity): `clean_email`.

email-validator checks the syntax (without DNS: a help desk must take mail from a domain that is
down); we are stricter than RFC 5322 and refuse the characters of REFUSED_CHARACTERS and any
format character (U+202E and the other bidi controls make an address look like another).
"""

from __future__ import annotations

import functools
import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # what fits in a mail's forward path (RFC 5321)

# RFC 5322 allows these in an address, but no help desk customer needs them, and they are what
# header and URL tricks are made of: "x?cc=attacker%40evil.example&subject=hi@example.com" is a
# valid address that a mailto: link turns into a mail with an extra Cc. Quotes and "!" (UUCP
# bang paths), "#" (URL fragments) and "/" (paths) go the same way. The apostrophe stays: real
# people have addresses like o'brien@example.com.
REFUSED_CHARACTERS = frozenset('?%&/=!#"`')


# email-validator costs ~35 µs an address, ten times the rest of a submission's checks; the same
# customers write again and again (and retries resend the same body), so results are kept.
@functools.lru_cache(maxsize=4096)
def clean_email(value: str) -> str | None:
    """The address with its domain in lower case (IDNA), or None when it is not one."""
    value = value.strip()
    if len(value) > MAX_LENGTH:
        return None
    if any(ch in REFUSED_CHARACTERS or unicodedata.category(ch) == "Cf" for ch in value):
        return None
    try:
        found = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{found.local_part}@{found.ascii_domain}"
