"""Signed identity for the widget: a company's JWT signs its user in as one of our customers.

The company's server signs a short-lived JWT (header `kid` naming one of the tenant's keys;
claims `external_id`, `exp`, optionally `iat`, `nbf`, `email`, `name`) and the widget posts it to
`POST /widget/identify`. `verify` trusts nothing in it before the signature holds: the algorithm
comes from the key the `kid` names, never from the token, so `alg: none` and a public key used as
an HMAC secret are refused; a token lives at most 24 hours. Several keys may be active at once,
so a company rotates by adding a key, moving its servers to it, then deleting the old one.

On success the visitor is signed in exactly as after a magic link (the partitioned cookie of the
panel's cross-site iframe) and gets a visitor token whose id comes from the external id, so the
user's chats follow them to every device. That id starts with `x:`, which the random ids of
`/messenger/token` (URL-safe base64) never contain: only this endpoint hands one out, so it
proves the company identified the visitor even where the portal's cookie is not sent.

The portal's cookie is scoped to `/portal`, so `/widget/logout` never sees it: identify also sets
`portal_widget` (path `/widget`, signed) naming the session, and logout ends that session on the
server, which signs the portal cookie out at once too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jwt
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jwt.algorithms import get_default_algorithms
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from portal import jsonsafe
from portal.core.contract import Conflict, NotFound, WidgetKey
from portal.emails import clean_email
from portal.embedding import set_cookie
from portal.messenger.service import visitor_token
from portal.ratelimit import IDENTIFY_PER_ADDRESS, client_ip, too_many
from portal.request_helpers import same_origin, tenant_of
from portal.services import services
from portal.sessions import store
from portal.sessions.customer import SESSION_MAX_AGE, sign_in, sign_out
from portal.text import clean_name

MAX_LIFETIME_S = 24 * 3600
LEEWAY_S = 60  # clocks of the company's servers and ours may differ a little
MAX_TOKEN = 8192  # characters; a real token is a few hundred
MAX_EXTERNAL_ID = 200
MAX_NAME = 200
VISITOR_PREFIX = "x:"
WIDGET_COOKIE = "portal_widget"
WIDGET_COOKIE_PATH = "/widget"


class IdentityRefused(ValueError):
    """The token does not prove who the visitor is; the message tells its developer why."""


@dataclass(frozen=True)
class Identity:
    external_id: str
    email: str | None  # None: none in the token, or not a valid address (dropped, not fatal)
    name: str
    expires_at: datetime


# ------------------------------------------------------------------ verification
@lru_cache(maxsize=256)
def _public_key(alg: str, pem: str) -> Any:
    # Parsing a PEM costs more than checking a signature; keys change rarely.
    return get_default_algorithms()[alg].prepare_key(pem)


def _verifying_key(key: WidgetKey) -> Any:
    if key.alg == "HS256":
        return (key.secret or "").encode()
    return _public_key(key.alg, key.public_key or "")


def _time(claims: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise IdentityRefused(f"The token has no {name!r} claim; it is required.")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IdentityRefused(f"The {name!r} claim must be a number of seconds since 1970.")
    return float(value)


def verify(token: Any, keys: list[WidgetKey], now: float | None = None) -> Identity:
    """The identity a token proves, signed with one of `keys`; else IdentityRefused(reason)."""
    now = time.time() if now is None else now
    if not isinstance(token, str) or not token:
        raise IdentityRefused("Send the JWT as a string in 'token'.")
    if len(token) > MAX_TOKEN:
        raise IdentityRefused(f"The token is longer than {MAX_TOKEN} characters.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise IdentityRefused("The token is not a JWT (header.payload.signature).") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise IdentityRefused("The token is unsigned (alg 'none'); sign it with your key.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise IdentityRefused("The token's header has no 'kid'; name the key that signed it.")
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        raise IdentityRefused(f"No key with kid {kid!r} exists for this site (see the admin).")
    if alg != key.alg:
        raise IdentityRefused(f"The key {kid!r} signs with {key.alg}, but the token says {alg}.")
    try:
        claims = jwt.decode(
            token,
            _verifying_key(key),
            algorithms=[key.alg],  # from the key: the token's own claim decides nothing
            # Times are checked below against `now`, with messages a developer can act on.
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidSignatureError:
        raise IdentityRefused(f"The signature does not match the key {kid!r}.") from None
    except jwt.InvalidAudienceError:
        raise IdentityRefused("The token has an 'aud' claim; leave it out.") from None
    except jwt.InvalidTokenError as exc:
        raise IdentityRefused(f"The token cannot be read: {exc}.") from None
    return _identity(claims, now)


def _identity(claims: dict[str, Any], now: float) -> Identity:
    exp = _time(claims, "exp", required=True)
    iat = _time(claims, "iat")
    nbf = _time(claims, "nbf")
    assert exp is not None
    if exp <= now - LEEWAY_S:
        raise IdentityRefused("The token has expired ('exp' is past); make a fresh one.")
    if nbf is not None and nbf > now + LEEWAY_S:
        raise IdentityRefused("The token is not valid yet ('nbf' is in the future).")
    if iat is not None and iat > now + LEEWAY_S:
        raise IdentityRefused("The token was issued in the future ('iat'); check your clock.")
    if exp - (iat if iat is not None else now) > MAX_LIFETIME_S or exp - now > MAX_LIFETIME_S:
        raise IdentityRefused("The token lives longer than 24 hours; make 'exp' sooner.")
    external_id = claims.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        raise IdentityRefused("The token has no 'external_id' claim (the user's id, a string).")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise IdentityRefused(f"'external_id' is longer than {MAX_EXTERNAL_ID} characters.")
    email, name = claims.get("email"), claims.get("name")
    return Identity(
        external_id=external_id,
        email=clean_email(email) if isinstance(email, str) else None,
        name=clean_name(name)[:MAX_NAME] if isinstance(name, str) else "",
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


# ------------------------------------------------------------------ visitor ids
def identified_visitor_id(secret_key: str, tenant_id: int, external_id: str) -> str:
    """The visitor id of a user the company identified: the same on every device.

    Keyed with our secret, so nobody can tell from a visitor id which external id it is."""
    message = f"{tenant_id}:{external_id}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()[:18]
    return VISITOR_PREFIX + base64.urlsafe_b64encode(digest).decode()


def is_identified_visitor(visitor_id: str) -> bool:
    """True for the ids only `/widget/identify` hands out (see the module docstring)."""
    return visitor_id.startswith(VISITOR_PREFIX)


# ------------------------------------------------------------------ HTTP
def _widget_cookies(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        services(request).settings.secret_key, salt="portal.widget-session"
    )


def _widget_session(request: Request) -> str | None:
    """The session id `portal_widget` names, if it was signed for this tenant."""
    value = request.cookies.get(WIDGET_COOKIE)
    if not value:
        return None
    try:
        data = _widget_cookies(request).loads(value, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("t") != tenant_of(request).id:
        return None
    sid = data.get("s")
    return sid if isinstance(sid, str) else None


def _refused(reason: str, status: int = 401) -> Response:
    return JSONResponse({"error": reason}, status, headers={"Cache-Control": "no-store"})


async def identify(request: Request) -> Response:
    """`{"token": JWT}` -> the customer, signed in, and a visitor token; 401 with the reason."""
    tenant = tenant_of(request)
    if not same_origin(request):
        return _refused("Only the widget's own panel may sign visitors in.", 403)
    refused = services(request).rate_limits.check(
        tenant, (IDENTIFY_PER_ADDRESS, client_ip(request))
    )
    if refused is not None:
        return too_many(request, refused)
    try:
        body = jsonsafe.loads(await request.body())
    except jsonsafe.JSONError as exc:
        return _refused(str(exc), 400)
    core = services(request).core
    try:
        token = body.get("token") if isinstance(body, dict) else None
        identity = verify(token, await core.customers.list_widget_keys(tenant.id))
        customer = await core.customers.identified_customer(
            tenant.id, identity.external_id, identity.email, identity.name
        )
    except IdentityRefused as exc:
        return _refused(str(exc))
    except NotFound:
        customer = None  # no email to make them with: chats still follow them, tickets cannot
    except Conflict:
        return _refused("The token's email belongs to a user with another external_id.")
    secret = services(request).settings.secret_key
    visitor_id = identified_visitor_id(secret, tenant.id, identity.external_id)
    shown = None
    if customer is not None:
        shown = {
            "name": customer.name,
            "email": customer.email,
            "external_id": customer.external_id,
        }
    response = JSONResponse(
        {
            "customer": shown,
            "visitor_token": visitor_token(services(request).signer, tenant.id, visitor_id),
        },
        headers={"Cache-Control": "no-store"},
    )
    old = _widget_session(request)
    if old is not None:  # a token refreshed, or another user on this device: one session each
        await store.end(request, old)
    if customer is None:
        sign_out(response, request)
        _drop_widget_cookie(response, request)
        return response
    sid = await sign_in(response, request, customer, embed=True)
    value = _widget_cookies(request).dumps({"t": tenant.id, "s": sid})
    set_cookie(
        response,
        request,
        WIDGET_COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        path=WIDGET_COOKIE_PATH,
        embed=True,
    )
    return response


def _drop_widget_cookie(response: Response, request: Request) -> None:
    set_cookie(response, request, WIDGET_COOKIE, "", max_age=0, path=WIDGET_COOKIE_PATH, embed=True)


async def logout(request: Request) -> Response:
    """End the session identify started (the portal's cookie dies with it) and drop cookies."""
    if not same_origin(request):
        return _refused("Only the widget's own panel may sign visitors out.", 403)
    sid = _widget_session(request)
    if sid is not None:
        await store.end(request, sid)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    sign_out(response, request)
    _drop_widget_cookie(response, request)
    return response


routes: list[BaseRoute] = [
    Route("/widget/identify", identify, methods=["POST"], name="widget_identify"),
    Route("/widget/logout", logout, methods=["POST"], name="widget_logout"),
]
