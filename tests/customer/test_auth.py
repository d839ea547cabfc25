"""Magic-link sign-in: the mail, confirm step, single use, expiry, codes, cookies, rate limits."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from portal.core.contract import TicketDraft
from portal.customer.links import magic_payload, sign_in_code
from portal.security import SALTS
from tests.conftest import serve_app
from tests.customer.conftest import (
    code_in,
    csrf_from,
    link_path,
    mail_text,
    mails_to,
    request_link,
    sign_in,
    wait_mail,
)

ALICE = "alice@example.com"


def old_token(secret: str, payload: dict, age_seconds: int) -> str:
    """A magic-link token signed `age_seconds` ago (itsdangerous' clock, not a mock)."""

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age_seconds

    return URLSafeTimedSerializer(secret, salt=SALTS["magic-link"], signer=Past).dumps(payload)


def set_cookies(response) -> dict[str, str]:
    """Set-Cookie headers by cookie name."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        found.setdefault(header.split("=", 1)[0], header)
    return found


def attributes(header: str) -> set[str]:
    """Attribute names, lower-case, with SameSite's value: {"httponly", "samesite=lax"}."""
    found = set()
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        name = name.lower()
        found.add(f"samesite={value.lower()}" if name == "samesite" else name)
    return found


@pytest.mark.both_databases
async def test_sign_in_by_mailed_link(portal):
    ticket = await portal.ticket(ALICE, "Printer is broken")
    async with portal.client() as client:
        page = await client.get("/portal/tickets")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/portal/sign-in?next=")

        answer = await request_link(client, ALICE)
        assert answer.status_code == 200
        assert "we sent a sign-in link" in answer.text
        message = await wait_mail(portal.smtp, ALICE)
        assert "Acme" in message["Subject"]
        text = mail_text(message)
        assert "expire in 15 minutes" in text
        path = link_path(message)

        # Opening the link (as a mail scanner would) only shows a button: nothing is spent.
        for _ in range(2):
            confirm = await client.get(path)
            assert confirm.status_code == 200
            assert ALICE in confirm.text
            assert confirm.headers["referrer-policy"] == "same-origin"
            assert "portal_customer" not in set_cookies(confirm)

        done = await client.post(path)
        assert done.status_code == 303
        assert done.headers["location"] == "/portal/tickets"
        assert "portal_customer" in set_cookies(done)
        tickets = await client.get("/portal/tickets")
        assert tickets.status_code == 200
        assert "Printer is broken" in tickets.text
        assert f"/portal/tickets/{ticket.id}" in tickets.text


async def test_link_works_once(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        await request_link(client, ALICE)
        message = await wait_mail(portal.smtp, ALICE)
        path = link_path(message)
        assert (await client.post(path)).status_code == 303
        # The code from the same mail is spent too.
        code = await client.post("/portal/sign-in/code", data={"code": code_in(message)})
        assert code.status_code == 400
    async with portal.client() as other:
        again = await other.post(path)
        assert again.status_code == 400
        assert "cannot be used" in again.text
        assert "portal_customer" not in set_cookies(again)


async def test_expired_link_is_refused(portal):
    await portal.ticket(ALICE)
    secret = portal.settings.secret_key
    fresh = old_token(secret, magic_payload(portal.tenant.id, ALICE, "id-fresh", 15), 14 * 60)
    stale = old_token(secret, magic_payload(portal.tenant.id, ALICE, "id-stale", 15), 16 * 60)
    async with portal.client() as client:
        expired = await client.get(f"/portal/sign-in/{stale}")
        assert expired.status_code == 400
        assert "expired" in expired.text
        assert (await client.post(f"/portal/sign-in/{stale}")).status_code == 400
        assert (await client.post(f"/portal/sign-in/{fresh}")).status_code == 303


async def test_tenant_sets_the_link_lifetime(portal):
    await portal.ticket(ALICE)
    await portal.settings_changed(magic_link_minutes=2)
    async with portal.client() as client:
        answer = await request_link(client, ALICE)
        assert "expires in 2 minutes" in answer.text
        message = await wait_mail(portal.smtp, ALICE)
        assert "expire in 2 minutes" in mail_text(message)
        token = link_path(message).rsplit("/", 1)[1]
        payload = URLSafeTimedSerializer(
            portal.settings.secret_key, salt=SALTS["magic-link"]
        ).loads(token)
        assert payload["m"] == 2
        # A token that says 2 minutes is refused after 3, though 15 is the default.
        secret = portal.settings.secret_key
        stale = old_token(secret, magic_payload(portal.tenant.id, ALICE, "x", 2), 3 * 60)
        assert (await client.post(f"/portal/sign-in/{stale}")).status_code == 400


async def test_forged_or_foreign_tokens_are_refused(portal):
    await portal.ticket(ALICE)
    other = await portal.core.tenants.create_tenant("globex", "Globex")
    secret = portal.settings.secret_key
    foreign = old_token(secret, magic_payload(other.id, ALICE, "id-foreign", 15), 0)
    forged = old_token(
        "another-secret-of-enough-length-000000",
        magic_payload(portal.tenant.id, ALICE, "id-forged", 15),
        0,
    )
    rating_salt = URLSafeTimedSerializer(secret, salt=SALTS["rating-link"]).dumps(
        magic_payload(portal.tenant.id, ALICE, "id-wrong-purpose", 15)
    )
    async with portal.client() as client:
        for token in (foreign, forged, rating_salt, "not-a-token"):
            assert (await client.post(f"/portal/sign-in/{token}")).status_code == 400


async def test_unknown_email_gets_the_same_answer_and_no_mail(portal):
    await portal.ticket(ALICE)
    unknown = "nobody@example.com"
    # The unknown address first: in process, a request's background work (the mail) is done
    # before its answer returns, so a mail to it would be in the inbox before Alice's.
    async with portal.client() as client:
        unknown_answer = await request_link(client, unknown)
    async with portal.client() as client:
        known_answer = await request_link(client, ALICE)
    assert known_answer.status_code == unknown_answer.status_code == 200
    assert known_answer.text.replace(ALICE, "EMAIL") == unknown_answer.text.replace(
        unknown, "EMAIL"
    )

    def shape(response) -> dict[str, str]:
        return {k: re.sub(r"=[^;]*", "=", v, count=1) for k, v in set_cookies(response).items()}

    assert shape(known_answer) == shape(unknown_answer)
    assert sorted(known_answer.headers.keys()) == sorted(unknown_answer.headers.keys())
    await wait_mail(portal.smtp, ALICE)
    assert [m["To"] for m in portal.smtp.messages] == [ALICE]


async def test_sign_in_with_the_code_from_the_mail(portal):
    await portal.ticket(ALICE, "Code path")
    async with portal.client() as client:
        await request_link(client, ALICE)
        message = await wait_mail(portal.smtp, ALICE)
        wrong = await client.post("/portal/sign-in/code", data={"code": "AAAA-AAAA"})
        assert wrong.status_code == 400
        assert "not right" in wrong.text
        right = await client.post(
            "/portal/sign-in/code", data={"code": code_in(message).lower().replace("-", " ")}
        )
        assert right.status_code == 303
        assert "Code path" in (await client.get("/portal/tickets")).text
        # The link from the same mail is spent now.
        assert (await client.post(link_path(message))).status_code == 400


async def test_code_needs_the_browser_that_asked_and_has_few_attempts(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        await request_link(client, ALICE)
        message = await wait_mail(portal.smtp, ALICE)
        code = code_in(message)
        async with portal.client() as stranger:
            assert (
                await stranger.post("/portal/sign-in/code", data={"code": code})
            ).status_code == 400
        for _ in range(5):
            assert (
                await client.post("/portal/sign-in/code", data={"code": "BBBB-BBBB"})
            ).status_code == 400
        blocked = await client.post("/portal/sign-in/code", data={"code": code})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0


async def test_code_is_bound_to_the_token_id():
    assert sign_in_code("k" * 40, "one") != sign_in_code("k" * 40, "two")
    assert re.fullmatch(r"[A-Z2-7]{4}-[A-Z2-7]{4}", sign_in_code("k" * 40, "one"))


async def test_rate_limit_per_email_and_per_ip(portal):
    async with portal.client() as client:
        for _ in range(5):
            assert (await request_link(client, "CAROL@example.com")).status_code == 200
        limited = await request_link(client, "carol@example.com")
        assert limited.status_code == 429
        assert "Too many attempts" in limited.text
        assert 0 < int(limited.headers["retry-after"]) <= 15 * 60
        # Other addresses from the same address still work, up to the per-IP limit.
        statuses = [
            (await request_link(client, f"user{i}@example.com")).status_code for i in range(26)
        ]
        assert statuses[:24] == [200] * 24
        assert statuses[-1] == 429


async def test_session_cookie_attributes(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        done = await sign_in(client, portal, ALICE)
    cookie = set_cookies(done)["portal_customer"]
    assert attributes(cookie) >= {"httponly", "samesite=lax", "path", "max-age"}
    assert "secure" not in attributes(cookie)
    assert "partitioned" not in attributes(cookie)
    assert "Path=/;" in cookie  # the chat's socket and the widget's endpoints need it too


async def test_session_cookie_in_production_is_secure(settings, core, smtp):
    from portal.app import create_app

    prod = dataclasses.replace(
        settings,
        env="production",
        public_scheme="https",
        smtp_host="127.0.0.1",
        smtp_port=str(smtp.port),
    )
    tenant = await core.tenants.create_tenant("acme", "Acme")
    await core.tickets.create_ticket(tenant.id, TicketDraft("Hello", "Hi", ALICE), "k")
    async with (
        serve_app(create_app(prod, core=core), prod, core) as server,
        server.client("acme.portal.test") as client,
    ):
        await request_link(client, ALICE)
        message = await wait_mail(smtp, ALICE)
        assert "https://acme.portal.test/portal/sign-in/" in mail_text(message)
        done = await client.post(link_path(message))
    cookie = set_cookies(done)["portal_customer"]
    assert attributes(cookie) >= {"httponly", "secure", "samesite=lax"}
    assert "partitioned" not in attributes(cookie)


async def test_session_cookie_inside_an_iframe_is_partitioned(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        # The iframe entry: `?embed=1` on the page, carried on by the form.
        form = await client.get("/portal/sign-in?embed=1")
        assert 'name="embed" value="1"' in form.text
        answer = await request_link(client, ALICE, embed="1")
        pending = set_cookies(answer)["portal_signin"]
        assert attributes(pending) >= {"secure", "samesite=none", "partitioned", "httponly"}
        message = await wait_mail(portal.smtp, ALICE)
        # httpx does not send Secure cookies over http; the browser test covers that part.
        done = await client.post(
            "/portal/sign-in/code",
            data={"code": code_in(message), "embed": "1"},
            headers={"cookie": f"portal_signin={pending.split(';')[0].split('=', 1)[1]}"},
        )
    assert done.status_code == 303, done.text
    cookie = set_cookies(done)["portal_customer"]
    assert attributes(cookie) >= {"httponly", "secure", "samesite=none", "partitioned"}


async def test_iframe_header_alone_selects_the_partitioned_cookie(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        await request_link(client, ALICE)
        message = await wait_mail(portal.smtp, ALICE)
        done = await client.post(link_path(message), headers={"sec-fetch-dest": "iframe"})
    cookie = set_cookies(done)["portal_customer"]
    assert attributes(cookie) >= {"secure", "samesite=none", "partitioned"}


async def test_framing_is_limited_to_the_tenants_sites(portal):
    async with portal.client() as client:
        default = await client.get("/portal/sign-in")
        assert "frame-ancestors 'self'" in default.headers["content-security-policy"]
        await portal.settings_changed(
            embed_origins=["https://www.acme.example", "javascript:alert(1)"]
        )
        allowed = await client.get("/portal/sign-in")
    csp = allowed.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://www.acme.example;" in csp + ";"
    assert "javascript" not in csp


async def test_sign_out(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get("/portal/tickets")
        no_token = await client.post("/portal/sign-out")
        assert no_token.status_code == 403
        out = await client.post("/portal/sign-out", data={"csrf_token": csrf_from(page.text)})
        assert out.status_code == 303
        assert "Max-Age=0" in set_cookies(out)["portal_customer"]
        assert (await client.get("/portal/tickets")).status_code == 303


async def test_link_lands_on_next_but_never_elsewhere(portal):
    ticket = await portal.ticket(ALICE)
    async with portal.client() as client:
        await request_link(client, ALICE, next=f"/portal/tickets/{ticket.id}")
        message = await wait_mail(portal.smtp, ALICE)
        done = await client.post(link_path(message))
        assert done.headers["location"] == f"/portal/tickets/{ticket.id}"
    async with portal.client() as client:
        await request_link(client, ALICE, next="//evil.example/x")
        message = await wait_mail(portal.smtp, ALICE, seen=1)
        done = await client.post(link_path(message))
        assert done.headers["location"] == "/portal/tickets"


async def test_cross_site_posts_are_refused(portal):
    await portal.ticket(ALICE)
    async with portal.client() as client:
        answer = await client.post(
            "/portal/sign-in",
            data={"email": ALICE},
            headers={"origin": "https://evil.example"},
        )
        assert answer.status_code == 403
        # A same-site request next: its mail comes after any the refused one would have sent.
        assert (await request_link(client, ALICE)).status_code == 200
        await wait_mail(portal.smtp, ALICE)
    assert len(mails_to(portal.smtp, ALICE)) == 1


async def test_invalid_email_is_explained(portal):
    async with portal.client() as client:
        answer = await request_link(client, "not-an-email")
    assert answer.status_code == 400
    assert "name@example.com" in answer.text
