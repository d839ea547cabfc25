"""Signed form tokens, the page form's CSRF cookie, idempotency and visit keys.

Form token
    `signer.dumps("form-token", {"k": "form", "t": tenant_id, "f": form_id, "v": visit_key})`,
    valid for a day. The iframe variant and the JSON API use it instead of CSRF (third-party
    cookies are blocked in iframes, and the API uses no cookies at all): it proves the client
    fetched this form of this tenant recently. It also carries the visit key, so deflections
    (suggested articles opened) and the ticket that may follow are tied to one server-made key.

Thank-you token
    The Post/Redirect/Get target carries `{"k": "thanks", "t", "f", "n": ticket number}` signed
    with the same purpose (the "k" keeps the two kinds apart), so the reference on the thank-you
    page cannot be made up, and a honeypot hit can be sent there without any number. A ticket
    still in the edge's outbox (a remote core that did not answer in time) has no number yet:
    "n" is then its local reference, a string such as `R-7KQ2M4XP`.

CSRF on the page form
    A random nonce in the HttpOnly cookie `portal_form` (path /forms, SameSite=Lax) and
    `csrf_token(signer, "form:" + nonce)` in the form, checked with `csrf_ok`.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from portal.csrf import csrf_ok, csrf_token
from portal.security import Signer

FORM_TOKEN_MAX_AGE = 24 * 3600
THANKS_MAX_AGE = 24 * 3600
VISIT_COOKIE = "portal_form"
VISIT_COOKIE_MAX_AGE = 12 * 3600
KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,100}")


def new_key() -> str:
    return secrets.token_urlsafe(18)


def valid_key(value: Any) -> bool:
    return isinstance(value, str) and KEY_RE.fullmatch(value) is not None


def make_form_token(signer: Signer, tenant_id: int, form_id: int, visit_key: str) -> str:
    return signer.dumps("form-token", {"k": "form", "t": tenant_id, "f": form_id, "v": visit_key})


def read_form_token(signer: Signer, token: Any, tenant_id: int, form_id: int) -> str | None:
    """The visit key of a valid token for this tenant's form, else None."""
    if not isinstance(token, str) or not token or len(token) > 1000:
        return None
    data = signer.loads("form-token", token, max_age=FORM_TOKEN_MAX_AGE)
    if not isinstance(data, dict) or data.get("k") != "form":
        return None
    if data.get("t") != tenant_id or data.get("f") != form_id or not valid_key(data.get("v")):
        return None
    return data["v"]


def make_thanks_token(
    signer: Signer, tenant_id: int, form_id: int, number: int | str | None
) -> str:
    return signer.dumps("form-token", {"k": "thanks", "t": tenant_id, "f": form_id, "n": number})


def read_thanks_token(
    signer: Signer, token: Any, tenant_id: int, form_id: int
) -> tuple[bool, int | str | None]:
    """(valid, ticket number, a pending ticket's local reference, or None) for a thank-you
    link."""
    if not isinstance(token, str) or not token or len(token) > 1000:
        return False, None
    data = signer.loads("form-token", token, max_age=THANKS_MAX_AGE)
    if not isinstance(data, dict) or data.get("k") != "thanks":
        return False, None
    if data.get("t") != tenant_id or data.get("f") != form_id:
        return False, None
    number = data.get("n")
    return True, number if isinstance(number, int | str) else None


def visit_nonce(cookie: str | None) -> tuple[str, bool]:
    """The nonce from the page form's cookie, or a new one (second item: is it new)."""
    if cookie and valid_key(cookie) and len(cookie) >= 20:
        return cookie, False
    return secrets.token_urlsafe(24), True


def page_csrf_token(signer: Signer, nonce: str) -> str:
    return csrf_token(signer, f"form:{nonce}")


def page_csrf_ok(signer: Signer, nonce: str | None, token: Any) -> bool:
    if not nonce or not isinstance(token, str):
        return False
    return csrf_ok(signer, f"form:{nonce}", token)
