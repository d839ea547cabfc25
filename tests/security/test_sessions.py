"""Finding 9: sign-out must end a session on the server, so a copied cookie dies at once.

Each test takes a copy of a session cookie (as malware, a shared computer or a leaked log would),
signs out in the real browser's stead, and checks that the copy answers like no cookie at all.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from portal.security import Signer
from tests.customer.conftest import link_path, mails_to, wait_mail
from tests.security.conftest import ADMIN_PASSWORD, SECRET, Served, fresh_ip

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(page: str) -> str:
    found = CSRF_RE.findall(page)
    assert found, "no form with a CSRF token on the page"
    return html.unescape(found[0])


def signed_out(response: httpx.Response, path: str) -> bool:
    """The answer to a request without a session: a 303 to the sign-in page."""
    return response.status_code == 303 and urlsplit(response.headers["location"]).path == path


def set_cookie(response: httpx.Response, name: str) -> set[str]:
    """The attributes of the Set-Cookie for `name`, lowercased."""
    header = next(c for c in response.headers.get_list("set-cookie") if c.startswith(name + "="))
    return {part.strip().lower() for part in header.split(";")[1:]}


class Browsers:
    """Clients of one test, each from its own address, all closed at the end."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.made: list[httpx.AsyncClient] = []

    def new(self, **headers: str) -> httpx.AsyncClient:
        client = self.served.client("acme", headers=headers)
        self.made.append(client)
        return client

    def copy(self, client: httpx.AsyncClient, cookie: str) -> httpx.AsyncClient:
        """Another client, elsewhere, sending a copy of `client`'s cookie."""
        return self.new(cookie=f"{cookie}={client.cookies[cookie]}")

    async def agent(self, email: str = "admin@acme.test") -> httpx.AsyncClient:
        client = self.new()
        page = await client.get("/admin/login")
        data = {"csrf_token": csrf_from(page.text), "email": email, "password": ADMIN_PASSWORD}
        answer = await client.post("/admin/login", data=data)
        assert answer.status_code == 303, answer.text
        return client

    async def customer(
        self, email: str, **headers: str
    ) -> tuple[httpx.AsyncClient, httpx.Response]:
        """A browser signed in by magic link, and the answer that set its cookie."""
        client = self.new(**headers)
        inbox = self.served.inbox
        seen = len(mails_to(inbox, email))
        asked = await client.post("/portal/sign-in", data={"email": email})
        assert asked.status_code == 200, asked.text
        path = link_path(await wait_mail(inbox, email, seen=seen))
        assert (await client.get(path)).status_code == 200
        done = await client.post(path)
        assert done.status_code == 303, done.text
        return client, done


@pytest.fixture
async def browsers(served: Served) -> AsyncIterator[Browsers]:
    made = Browsers(served)
    yield made
    for client in made.made:
        await client.aclose()


# ------------------------------------------------------------------ agents
async def test_a_copied_agent_cookie_dies_when_the_agent_signs_out(
    served: Served, served_core, browsers: Browsers
):
    tenant = served.tenants["acme"]
    browser = await browsers.agent()
    # Only the SHA-256 of the cookie's token is stored: the row is named by it.
    token = Signer(SECRET).loads("agent-session", browser.cookies["portal_agent"])["sid"]
    row_id = hashlib.sha256(token.encode()).hexdigest()
    assert await served_core.customers.get_session(tenant.id, row_id) is not None
    assert await served_core.customers.get_session(tenant.id, token) is None

    thief = browsers.copy(browser, "portal_agent")
    assert (await thief.get("/admin/")).status_code == 200
    dashboard = await browser.get("/admin/")
    out = await browser.post("/admin/logout", data={"csrf_token": csrf_from(dashboard.text)})
    assert signed_out(out, "/admin/login")
    assert "max-age=0" in set_cookie(out, "portal_agent")
    assert await served_core.customers.get_session(tenant.id, row_id) is None
    # The copy is refused at once, for pages and form posts alike.
    assert signed_out(await thief.get("/admin/"), "/admin/login")
    assert signed_out(await thief.get("/agent/tickets"), "/admin/login")
    assert signed_out(await thief.post("/admin/branding", data={"name": "X"}), "/admin/login")
    assert (await served_core.tenants.get_tenant("acme")).name == "Acme"


async def test_sign_out_everywhere_ends_every_session_of_the_agent(browsers: Browsers):
    laptop = await browsers.agent()
    phone = await browsers.agent()
    colleague = await browsers.agent("agent@acme.test")
    thief = browsers.copy(laptop, "portal_agent")
    for client in (laptop, phone, thief):
        assert (await client.get("/admin/")).status_code == 200
    dashboard = await phone.get("/admin/")
    assert 'action="/admin/logout-everywhere"' in dashboard.text
    # Without the form's token nothing happens.
    assert (await phone.post("/admin/logout-everywhere")).status_code == 403
    assert (await thief.get("/admin/")).status_code == 200

    token = csrf_from(dashboard.text)
    out = await phone.post("/admin/logout-everywhere", data={"csrf_token": token})
    assert signed_out(out, "/admin/login")
    for client in (laptop, phone, thief):
        assert signed_out(await client.get("/admin/"), "/admin/login")
    # Another agent of the tenant keeps their session.
    assert (await colleague.get("/agent/tickets")).status_code == 200


async def test_an_agent_signs_out_everywhere_from_the_console(browsers: Browsers):
    console = await browsers.agent("agent@acme.test")
    thief = browsers.copy(console, "portal_agent")
    inbox = await console.get("/agent/tickets")
    assert inbox.status_code == 200
    assert 'action="/admin/logout-everywhere"' in inbox.text
    out = await console.post("/admin/logout-everywhere", data={"csrf_token": csrf_from(inbox.text)})
    assert signed_out(out, "/admin/login")
    assert signed_out(await thief.get("/agent/tickets"), "/admin/login")


async def test_a_well_signed_cookie_without_a_session_is_refused(served: Served, browsers):
    """A good signature is not enough (a leaked key, a cookie from before): the row decides."""
    tenant = served.tenants["acme"]
    forged = Signer(SECRET).dumps(
        "agent-session", {"agent_id": 1, "tenant_id": tenant.id, "sid": "made-up-token"}
    )
    client = browsers.new(cookie=f"portal_agent={forged}")
    assert signed_out(await client.get("/admin/"), "/admin/login")


# ------------------------------------------------------------------ customers
async def test_a_copied_customer_cookie_dies_when_the_customer_signs_out(
    served: Served, served_core, browsers: Browsers
):
    tenant = served.tenants["acme"]
    email = f"kim-{fresh_ip()}@example.com"
    customer = await served_core.customers.ensure_customer(tenant.id, email, "Kim")
    assert customer.email_verified_at is None
    browser, done = await browsers.customer(email)
    assert {"httponly", "samesite=lax", "path=/"} <= set_cookie(done, "portal_customer")
    # Following the link proved the address.
    assert (
        await served_core.customers.get_customer(tenant.id, customer.id)
    ).email_verified_at is not None

    thief = browsers.copy(browser, "portal_customer")
    assert (await thief.get("/portal/tickets")).status_code == 200
    page = await browser.get("/portal/tickets")
    out = await browser.post("/portal/sign-out", data={"csrf_token": csrf_from(page.text)})
    assert signed_out(out, "/portal/sign-in")
    assert signed_out(await thief.get("/portal/tickets"), "/portal/sign-in")


async def test_a_customer_signs_out_everywhere(served: Served, served_core, browsers: Browsers):
    tenant = served.tenants["acme"]
    email = f"lee-{fresh_ip()}@example.com"
    await served_core.customers.ensure_customer(tenant.id, email, "Lee")
    laptop, _ = await browsers.customer(email)
    # Another sign-in inside the company's iframe: a partitioned cookie. It is Secure, which
    # this http client keeps but does not send, so a copy sends it by hand.
    framed, done = await browsers.customer(email, **{"sec-fetch-dest": "iframe"})
    assert {"httponly", "secure", "samesite=none", "partitioned"} <= set_cookie(
        done, "portal_customer"
    )
    phone = browsers.copy(framed, "portal_customer")
    thief = browsers.copy(laptop, "portal_customer")
    for client in (laptop, phone, thief):
        assert (await client.get("/portal/tickets")).status_code == 200

    page = await laptop.get("/portal/tickets")
    assert 'action="/portal/sign-out-everywhere"' in page.text
    token = csrf_from(page.text)
    out = await laptop.post("/portal/sign-out-everywhere", data={"csrf_token": token})
    assert signed_out(out, "/portal/sign-in")
    for client in (laptop, phone, thief):
        assert signed_out(await client.get("/portal/tickets"), "/portal/sign-in")


def test_tokens_made_before_the_signer_was_tuned_still_check() -> None:
    # The signer is made once and HMACs with the standard library's SHA-1: the same signature as
    # itsdangerous's defaults, so links and cookies made before an upgrade keep working.
    from itsdangerous import URLSafeTimedSerializer

    from portal.security import SALTS

    signer = Signer(SECRET)
    plain = URLSafeTimedSerializer(SECRET, salt=SALTS["magic-link"])
    made_before = plain.dumps({"customer": 7})
    assert signer.loads("magic-link", made_before, max_age=60) == {"customer": 7}
    assert plain.loads(signer.dumps("magic-link", {"customer": 8})) == {"customer": 8}
    assert signer.loads("customer-session", made_before) is None  # another purpose's salt
    assert signer.loads("magic-link", made_before[:-2] + "xx") is None
