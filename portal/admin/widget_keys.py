"""Admin page for widget identity: the keys that sign identity tokens, and "require identity".

An HS256 secret is made here and shown once (only the page that made it holds it; the list never
shows it again). A public key (ES256 on P-256, or EdDSA) is pasted as PEM or JWK and stored as
PEM, so the company signs with a private key we never see. Several keys may be active at once,
which is how a company rotates them.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal import jsonsafe
from portal.admin.auth import admin_page, require_agent
from portal.core.contract import Conflict, NotFound
from portal.i18n import gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services
from portal.widget.settings import WidgetSettings

KID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_KEY_TEXT = 10_000


class UnusableKey(ValueError):
    """A pasted key we cannot use; the message (translated) says why."""


def public_key(text: str) -> tuple[str, str, str]:
    """(alg, PEM, kid from a JWK or "") of a pasted PEM or JWK public key; else UnusableKey."""
    if "PRIVATE" in text or '"d"' in text:
        raise UnusableKey(gettext("This is a private key. Paste the public key; keep this secret."))
    kid = ""
    try:
        if text.startswith("{"):
            data = jsonsafe.loads(text)
            if not isinstance(data, dict):
                raise ValueError
            found = data.get("kid")
            kid = found if isinstance(found, str) else ""
            key: Any = jwt.PyJWK(data).key
        else:
            key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError, jwt.PyJWKError, jwt.InvalidKeyError):
        raise UnusableKey(
            gettext("This key cannot be read. Paste a public key in PEM or as a JWK.")
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        alg = "ES256"
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        alg = "EdDSA"
    else:
        raise UnusableKey(gettext("Use an ES256 (P-256) or EdDSA (Ed25519) public key."))
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return alg, pem, kid


def _new_kid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def _page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    made: Any = None,
    status: int = 200,
) -> Response:
    core = services(request).core
    tenant = await core.tenants.get_tenant(tenant_of(request).slug)
    return admin_page(
        request,
        "admin/widget_keys.html",
        {
            "keys": await core.customers.list_widget_keys(tenant.id),
            "require_identity": WidgetSettings.for_tenant(tenant).require_identity,
            "values": values or {},
            "errors": errors or {},
            "made": made,
            "done": request.query_params.get("done", ""),
            "nav": "widget_keys",
        },
        status_code=status,
    )


@require_agent("admin")
async def widget_keys(request: Request) -> Response:
    if request.method != "POST":
        return await _page(request)
    form = await request.form()
    action = form_text(form, "action")
    if action == "generate":
        return await _generate(request)
    if action == "public":
        return await _add_public(request, form)
    if action == "require":
        await services(request).core.tenants.update_tenant_settings(
            tenant_of(request).id, {"widget_require_identity": form.get("require") == "1"}
        )
        return _back(request, "require")
    return await _page(request, status=400)


async def _generate(request: Request) -> Response:
    core, tenant = services(request).core, tenant_of(request)
    for _attempt in range(3):  # a random kid that is taken already: draw again
        try:
            made = await core.customers.add_widget_key(
                tenant.id, _new_kid("hs"), "HS256", secrets.token_urlsafe(32), None
            )
        except Conflict:
            continue
        return await _page(request, made=made)
    raise RuntimeError("could not draw a free kid")


async def _add_public(request: Request, form: FormData) -> Response:
    text, kid = form_text(form, "public_key")[:MAX_KEY_TEXT], form_text(form, "kid")
    values, errors = {"public_key": text, "kid": kid}, {}
    alg = pem = jwk_kid = ""
    try:
        alg, pem, jwk_kid = public_key(text)
    except UnusableKey as exc:
        errors["public_key"] = str(exc)
    kid = kid or jwk_kid or _new_kid("pk")
    if not KID_RE.fullmatch(kid):
        errors["kid"] = gettext("Use 1 to 64 letters, digits, dots, - or _.")
    if not errors:
        try:
            await services(request).core.customers.add_widget_key(
                tenant_of(request).id, kid, alg, None, pem
            )
            return _back(request, "added")
        except Conflict:
            errors["kid"] = gettext("That key id is taken.")
    return await _page(request, values=values, errors=errors, status=400)


@require_agent("admin")
async def widget_key_delete(request: Request) -> Response:
    try:
        await services(request).core.customers.delete_widget_key(
            tenant_of(request).id, request.path_params["id"]
        )
    except NotFound:
        pass  # deleted already: the list shows the truth
    return _back(request, "deleted")


def _back(request: Request, done: str) -> RedirectResponse:
    return redirect_to(request, "admin_widget_keys", f"done={done}")
