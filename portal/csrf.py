"""Cross-site request forgery: form tokens bound to a session, and the check of a posted form.

Every POST form of a signed-in agent or customer carries `csrf_token(signer, session id)` (the
stored id, not the cookie's token, so a page's HTML never holds what the cookie holds), and
`form_csrf_ok` checks it before the handler runs. In addition, a POST whose `Origin` names
another host is refused (`portal.request_helpers.same_origin`), which also covers the forms made
before any session exists. Forms without a session bind their token to a nonce cookie instead:
`"login:" + nonce` (the staff login, `portal.admin.auth`), `"form:" + nonce` (the web forms,
`portal.forms.tokens`).
"""

from __future__ import annotations

from starlette.requests import Request

from portal.request_helpers import same_origin
from portal.security import Signer
from portal.services import services

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # they change nothing: no token needed
TOKEN_MAX_AGE = 12 * 3600


def csrf_token(signer: Signer, session_id: str) -> str:
    """A token bound to one session; a form must echo it back."""
    return signer.dumps("csrf", session_id)


def csrf_ok(signer: Signer, session_id: str, token: str | None) -> bool:
    """Whether `token` was made for `session_id` (and is not older than TOKEN_MAX_AGE)."""
    if not token:
        return False
    return signer.loads("csrf", token, max_age=TOKEN_MAX_AGE) == session_id


async def form_csrf_ok(request: Request, session_id: str) -> bool:
    """The posted form comes from our page: same origin, and its `csrf_token` is the session's."""
    if not same_origin(request):
        return False
    form = await request.form()
    token = form.get("csrf_token")
    return isinstance(token, str) and csrf_ok(services(request).signer, session_id, token)
