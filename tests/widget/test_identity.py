"""Signed widget identity: `verify` on its own, `/widget/identify` and `/widget/logout` over
HTTP, the admin's keys page, and "require identity" on a real chat socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from portal.core.contract import TicketDraft, WidgetKey
from portal.widget.identity import IdentityRefused, is_identified_visitor, verify
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.conftest import BASE_DOMAIN, Server
from tests.messenger.conftest import Chat, client_id

HOST = f"acme.{BASE_DOMAIN}"
NOW = 1_800_000_000.0  # verify() takes the time: no test depends on the clock
SECRET = "a" * 43
ADMIN, ADMIN_PASSWORD = "admin@acme.test", "admin password 123"


def hs_key(kid: str = "k1", secret: str = SECRET) -> WidgetKey:
    return WidgetKey(1, 1, kid, "HS256", datetime.now(UTC), secret=secret)


def public_pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"external_id": "user-42", "iat": int(NOW), "exp": int(NOW) + 3600}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str = "HS256", kid: str = "k1", **extra: Any) -> str:
    return jwt.encode(claims(**extra), key, algorithm=alg, headers={"kid": kid})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def refusal(token: str, keys: list[WidgetKey]) -> str:
    with pytest.raises(IdentityRefused) as refused:
        verify(token, keys, now=NOW)
    return str(refused.value)


# ------------------------------------------------------------------ verify
def test_a_valid_hs256_token_names_the_user():
    token = sign(SECRET, email="Kim@Example.COM", name="  Kim \u202eK  ")
    identity = verify(token, [hs_key()], now=NOW)
    assert identity.external_id == "user-42"
    assert identity.email == "Kim@example.com"  # the domain lower-cased, as clean_email does
    assert identity.name == "Kim K"  # bidi control and extra spaces gone
    assert identity.expires_at == datetime.fromtimestamp(NOW + 3600, UTC)


@pytest.mark.parametrize(
    ("alg", "private"),
    [
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
    ],
)
def test_valid_public_key_tokens(alg, private):
    key = WidgetKey(2, 1, "pk", alg, datetime.now(UTC), public_key=public_pem(private))
    assert verify(sign(private, alg, "pk"), [key], now=NOW).external_id == "user-42"


def test_a_bad_email_is_dropped_not_fatal():
    identity = verify(sign(SECRET, email="not an address", name=7), [hs_key()], now=NOW)
    assert (identity.external_id, identity.email, identity.name) == ("user-42", None, "")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"exp": int(NOW) - 3600, "iat": int(NOW) - 7200}, "expired"),
        ({"nbf": int(NOW) + 3600}, "not valid yet"),
        ({"exp": int(NOW) + 25 * 3600}, "longer than 24 hours"),
        ({"iat": None, "exp": int(NOW) + 25 * 3600}, "longer than 24 hours"),
        ({"exp": None}, "'exp'"),
        ({"exp": "tomorrow"}, "number of seconds"),
        ({"external_id": None}, "external_id"),
        ({"external_id": 42}, "external_id"),
        ({"external_id": "x" * 201}, "longer than 200"),
    ],
)
def test_bad_claims_are_refused(extra, reason):
    assert reason in refusal(sign(SECRET, **extra), [hs_key()])


def test_an_unsigned_token_is_refused():
    token = f"{b64({'alg': 'none', 'kid': 'k1', 'typ': 'JWT'})}.{b64(claims())}."
    assert "unsigned" in refusal(token, [hs_key()])


def test_a_hs256_token_made_with_a_public_key_is_refused():
    """Algorithm confusion: the ES256 key's public PEM (known to anyone) used as HMAC secret."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = public_pem(private)
    key = WidgetKey(2, 1, "pk", "ES256", datetime.now(UTC), public_key=pem)
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'pk'})}.{b64(claims())}"
    mac = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "signs with ES256" in refusal(token, [key])


def test_a_wrong_key_or_an_unknown_kid_is_refused():
    assert "signature does not match" in refusal(sign("b" * 43), [hs_key()])
    assert "No key with kid 'other'" in refusal(sign(SECRET, kid="other"), [hs_key()])
    no_kid = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert "no 'kid'" in refusal(no_kid, [hs_key()])
    assert "not a JWT" in refusal("not.a.token", [hs_key()])


def test_keys_rotate():
    old, new = hs_key("old", "o" * 43), hs_key("new", "n" * 43)
    old_token, new_token = sign("o" * 43, kid="old"), sign("n" * 43, kid="new")
    for token in (old_token, new_token):
        assert verify(token, [old, new], now=NOW).external_id == "user-42"
    assert verify(new_token, [new], now=NOW).external_id == "user-42"
    assert "No key with kid 'old'" in refusal(old_token, [new])


# ------------------------------------------------------------------ HTTP
def cookie(response: httpx.Response, name: str) -> str:
    """The `name=value` of a Set-Cookie (the embed cookies are Secure: no jar sends them here)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}=") and "Max-Age=0" not in header:
            return header.split(";", 1)[0]
    raise AssertionError(f"no {name} cookie set: {response.headers.get_list('set-cookie')}")


def now_token(secret: str = SECRET, kid: str = "k1", **extra: Any) -> str:
    now = int(time.time())
    payload = {"external_id": "user-42", "iat": now, "exp": now + 600, **extra}
    return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})


@pytest.fixture
async def acme(server: Server):
    tenant = await server.tenant()
    await server.core.customers.add_widget_key(tenant.id, "k1", "HS256", SECRET, None)
    return tenant


async def identify(server: Server, token: str, headers: dict[str, str] | None = None):
    async with server.client(HOST) as client:
        return await client.post("/widget/identify", json={"token": token}, headers=headers)


@pytest.mark.both_databases
async def test_identify_signs_the_customer_in_to_their_tickets(server, acme):
    for subject in ("Printer on fire", "Invoice missing"):
        draft = TicketDraft(subject, "Help", "kim@example.com", "Kim")
        await server.core.tickets.create_ticket(acme.id, draft, subject)
    await server.core.tickets.create_ticket(
        acme.id, TicketDraft("Someone else's", "x", "pat@example.com"), "other"
    )
    response = await identify(server, now_token(email="kim@example.com", name="Kim"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer"] == {"name": "Kim", "email": "kim@example.com", "external_id": "user-42"}
    portal_cookie = cookie(response, "portal_customer")
    set_cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(portal_cookie)
    )
    assert "Partitioned" in set_cookie and "SameSite=None" in set_cookie and "Secure" in set_cookie

    async with server.client(HOST) as client:
        page = await client.get("/portal/tickets", headers={"cookie": portal_cookie})
    assert page.status_code == 200
    assert "Printer on fire" in page.text and "Invoice missing" in page.text
    assert "Someone else" not in page.text
    customer = await server.core.customers.find_customer(acme.id, "kim@example.com")
    assert customer.external_id == "user-42" and customer.email_verified_at is not None

    # Another device: the same visitor id, so the same chats.
    again = await identify(server, now_token(email="kim@example.com"))
    ids = [
        jwt.api_jws.base64url_decode(t["visitor_token"].split(".")[0] + "==")
        for t in (body, again.json())
    ]
    assert ids[0] == ids[1] and b'"x:' in ids[0]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: now_token(exp=int(time.time()) - 3600), "expired"),
        (lambda: now_token(secret="b" * 43), "signature does not match"),
        (lambda: now_token(kid="nope"), "No key with kid"),
        (lambda: f"{b64({'alg': 'none', 'kid': 'k1'})}.{b64(claims())}.", "unsigned"),
        (lambda: 12, "string"),
    ],
)
async def test_a_refused_token_signs_nobody_in(server, acme, make, reason):
    response = await identify(server, make())
    assert response.status_code == 401
    assert reason in response.json()["error"]
    assert response.headers.get_list("set-cookie") == []


async def test_a_token_of_another_tenant_is_refused(server, acme):
    globex = await server.tenant("globex", "Globex")
    await server.core.customers.add_widget_key(globex.id, "g1", "HS256", "g" * 43, None)
    response = await identify(server, now_token(secret="g" * 43, kid="g1"))
    assert response.status_code == 401 and "No key with kid 'g1'" in response.json()["error"]
    # The same kid in both tenants: the signature tells them apart.
    await server.core.customers.add_widget_key(globex.id, "k1", "HS256", "h" * 43, None)
    response = await identify(server, now_token(secret="h" * 43))
    assert response.status_code == 401 and "signature" in response.json()["error"]


async def test_identify_refuses_bad_bodies_and_other_origins(server, acme):
    async with server.client(HOST) as client:
        bad = await client.post("/widget/identify", content=b"{not json")
        elsewhere = await client.post(
            "/widget/identify",
            json={"token": now_token(email="kim@example.com")},
            headers={"origin": "https://evil.example"},
        )
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert elsewhere.status_code == 403 and elsewhere.headers.get_list("set-cookie") == []


async def test_a_token_without_email_gets_chat_but_no_account(server, acme):
    response = await identify(server, now_token())
    assert response.status_code == 200
    assert response.json()["customer"] is None and response.json()["visitor_token"]
    assert not any(
        h.startswith("portal_customer=") and "Max-Age=0" not in h
        for h in response.headers.get_list("set-cookie")
    )


async def test_logout_ends_the_session(server, acme):
    response = await identify(server, now_token(email="kim@example.com"))
    portal_cookie, widget_cookie = (
        cookie(response, "portal_customer"),
        cookie(response, "portal_widget"),
    )
    async with server.client(HOST) as client:
        out = await client.post("/widget/logout", headers={"cookie": widget_cookie})
        assert out.status_code == 204
        page = await client.get("/portal/tickets", headers={"cookie": portal_cookie})
    assert page.status_code == 303 and "/portal/sign-in" in page.headers["location"]


async def test_a_new_identity_ends_the_previous_session(server, acme):
    first = await identify(server, now_token(email="kim@example.com"))
    portal_cookie, widget_cookie = cookie(first, "portal_customer"), cookie(first, "portal_widget")
    second = await identify(
        server, now_token(external_id="user-7", email="lee@example.com"), {"cookie": widget_cookie}
    )
    assert second.status_code == 200
    async with server.client(HOST) as client:
        page = await client.get("/portal/tickets", headers={"cookie": portal_cookie})
    assert page.status_code == 303


# ------------------------------------------------------------------ admin
@asynccontextmanager
async def admin_client(
    server: Server, tenant, role: str = "admin"
) -> AsyncIterator[httpx.AsyncClient]:
    await server.agent(tenant, ADMIN, ADMIN_PASSWORD, role)
    async with server.client(HOST) as client:
        assert (await log_in(client, ADMIN, ADMIN_PASSWORD)).status_code == 303
        yield client


async def csrf(client: httpx.AsyncClient) -> str:
    page = await client.get("/admin/widget/keys")
    assert page.status_code == 200
    return hidden(TOKEN_RE, page.text)


async def test_the_admin_generates_lists_and_deletes_keys(server, acme):
    async with admin_client(server, acme) as client:
        made = await client.post(
            "/admin/widget/keys", data={"csrf_token": await csrf(client), "action": "generate"}
        )
        assert made.status_code == 200
        assert made.headers["cache-control"] == "no-store"
        kid = re.search(r'id="made-kid" type="text" value="([^"]+)"', made.text).group(1)
        secret = re.search(r'id="made-secret" type="text" value="([^"]+)"', made.text).group(1)
        assert len(secret) >= 43 and "jwt.sign(" in made.text and "jwt.encode(" in made.text
        # The new key works at once, beside the old one.
        assert (
            await identify(server, now_token(secret, kid, email="a@example.com"))
        ).status_code == 200
        assert (await identify(server, now_token(email="a@example.com"))).status_code == 200

        listing = await client.get("/admin/widget/keys")
        assert kid in listing.text and "k1" in listing.text
        assert secret not in listing.text  # shown once only

        key = next(k for k in await server.core.customers.list_widget_keys(acme.id) if k.kid == kid)
        deleted = await client.post(
            f"/admin/widget/keys/{key.id}/delete", data={"csrf_token": await csrf(client)}
        )
        assert deleted.status_code == 303
        assert kid not in (await client.get("/admin/widget/keys")).text
        assert (await identify(server, now_token(secret, kid))).status_code == 401


async def test_the_admin_adds_public_keys_and_refuses_bad_ones(server, acme):
    private = ec.generate_private_key(ec.SECP256R1())
    async with admin_client(server, acme) as client:
        token = await csrf(client)
        bad = await client.post(
            "/admin/widget/keys",
            data={
                "csrf_token": token,
                "action": "public",
                "public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
            },
        )
        assert bad.status_code == 400 and "cannot be read" in bad.text
        rsa_like = await client.post(
            "/admin/widget/keys",
            data={
                "csrf_token": token,
                "action": "public",
                "public_key": public_pem(ec.generate_private_key(ec.SECP384R1())),
            },
        )
        assert rsa_like.status_code == 400 and "P-256" in rsa_like.text
        secret_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        leaked = await client.post(
            "/admin/widget/keys",
            data={"csrf_token": token, "action": "public", "public_key": secret_pem},
        )
        assert leaked.status_code == 400 and "private key" in leaked.text

        added = await client.post(
            "/admin/widget/keys",
            data={
                "csrf_token": token,
                "action": "public",
                "public_key": public_pem(private),
                "kid": "es-1",
            },
        )
        assert added.status_code == 303
        edkey = ed25519.Ed25519PrivateKey.generate()
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(edkey.public_key()))
        jwk["kid"] = "ed-1"
        added_jwk = await client.post(
            "/admin/widget/keys",
            data={"csrf_token": token, "action": "public", "public_key": json.dumps(jwk)},
        )
        assert added_jwk.status_code == 303
    algs = {k.kid: k.alg for k in await server.core.customers.list_widget_keys(acme.id)}
    assert algs == {"k1": "HS256", "es-1": "ES256", "ed-1": "EdDSA"}
    now = int(time.time())
    payload = {"external_id": "u", "email": "u@example.com", "iat": now, "exp": now + 60}
    for private_key, alg, kid in ((private, "ES256", "es-1"), (edkey, "EdDSA", "ed-1")):
        signed = jwt.encode(payload, private_key, algorithm=alg, headers={"kid": kid})
        assert (await identify(server, signed)).status_code == 200


async def test_the_keys_page_needs_an_admin_and_csrf(server, acme):
    async with server.client(HOST) as anonymous:
        assert (await anonymous.get("/admin/widget/keys")).status_code == 303
    async with admin_client(server, acme, role="agent") as agent:
        assert (await agent.get("/admin/widget/keys")).status_code == 403
    await server.core.tenants.update_tenant_settings(acme.id, {})
    async with server.client(HOST) as client:
        await server.agent(acme, "boss@acme.test", ADMIN_PASSWORD, "admin")
        assert (await log_in(client, "boss@acme.test", ADMIN_PASSWORD)).status_code == 303
        forged = await client.post("/admin/widget/keys", data={"action": "generate"})
        assert forged.status_code == 403
    assert [k.kid for k in await server.core.customers.list_widget_keys(acme.id)] == ["k1"]


@pytest.mark.live_server  # websockets
async def test_require_identity_refuses_anonymous_chats(server, acme):
    async with admin_client(server, acme) as client:
        saved = await client.post(
            "/admin/widget/keys",
            data={"csrf_token": await csrf(client), "action": "require", "require": "1"},
        )
        assert saved.status_code == 303
        assert "checked" in (await client.get("/admin/widget/keys")).text
    assert (await server.core.tenants.get_tenant("acme")).settings[
        "widget_require_identity"
    ] is True

    chat = Chat(server, await server.core.tenants.get_tenant("acme"))
    try:
        anonymous, _ = await chat.visitor()
        await anonymous.send("start", client_id=client_id(), body="Hello?")
        error = await anonymous.expect("error")
        assert error["code"] == "not_allowed" and "sign you in" in error["message"]

        token = (await identify(server, now_token(email="kim@example.com"))).json()["visitor_token"]
        identified, ready = await chat.visitor(token)
        assert is_identified_visitor(ready["visitor_id"])
        assert await chat.start(identified, "Hello, it is Kim") > 0
    finally:
        await chat.close()
