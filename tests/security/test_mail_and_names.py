"""Attacks on mail headers, addresses, file names and unproved emails (issue 8, rows 6, 13, 14, 17).

Everything runs against a real `portal serve` and a real SMTP server. Tenants whose settings or
names a test changes behind the server's back are created fresh for that test, so the server's
short tenant cache cannot hide the change.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import Message
from email.utils import getaddresses

import httpx

from portal.core.contract import FormDraft, Tenant, Ticket, TicketDraft
from portal.core.embedded.core import EmbeddedCore
from tests.agent.test_console import log_in
from tests.customer.conftest import link_path, wait_mail
from tests.messenger.conftest import open_ws
from tests.security.conftest import ADMIN_PASSWORD, Served

MAIL_FROM = "help@portal.test"  # PORTAL_MAIL_FROM of the served process
PHISHING_NAME = "PayPal Security <security@paypal.com>, Other"
ATTACK_EMAIL = "x?cc=attacker%40evil.example&subject=hi@example.com"
RLO = "\u202e"
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
_numbers = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_numbers)}"


async def fresh_tenant(core: EmbeddedCore, name: str, **settings: object) -> Tenant:
    """A tenant the server has not seen yet (nothing of it is in its caches)."""
    tenant = await core.tenants.create_tenant(unique("t"), name)
    if settings:
        tenant = await core.tenants.update_tenant_settings(tenant.id, dict(settings))
    return tenant


@asynccontextmanager
async def admin_client(served: Served, slug: str = "acme") -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the tenant's admin (an agent too)."""
    async with served.client(slug) as client:
        signed_in = await log_in(client, f"admin@{slug}.test", ADMIN_PASSWORD)
        assert signed_in.status_code == 303, signed_in.text
        yield client


async def ticket_numbered(core: EmbeddedCore, tenant: Tenant, number: int) -> Ticket:
    page = await core.tickets.list_tickets(tenant.id, limit=100)
    return next(t for t in page.tickets if t.number == number)


def row_of(listing: str, email: str) -> str:
    """The ticket list's table row that names `email`."""
    [row] = [row for row in listing.split("<tr>") if email in row]
    return row


def envelope_sender(served: Served, message: Message) -> str:
    return served.inbox.envelope_senders[served.inbox.messages.index(message)]


# ------------------------------------------------------------------ row 6: sender names
async def test_branding_names_with_address_syntax_or_line_breaks_are_refused(
    served: Served, served_core: EmbeddedCore
) -> None:
    async with admin_client(served) as client:
        for name, shown in (
            (PHISHING_NAME, "< @ > ,"),
            ("Acme\r\nBcc: victim@example.net", "U+000D U+000A @"),
            (f"Acme{RLO}evil", "U+202E"),
        ):
            page = await client.get("/admin/branding")
            token = html.unescape(TOKEN_RE.search(page.text).group(1))
            answer = await client.post(
                "/admin/branding",
                data={
                    "csrf_token": token,
                    "name": name,
                    "logo_url": "",
                    "primary_color": "#1f6feb",
                },
            )
            assert answer.status_code == 400, name
            message = f"These characters are not allowed in the name: {shown}"
            assert message in html.unescape(answer.text), name
    assert (await served_core.tenants.get_tenant("acme")).name == "Acme"


async def test_a_hostile_tenant_name_in_the_database_cannot_add_a_sender(
    served: Served, served_core: EmbeddedCore
) -> None:
    for name in (PHISHING_NAME, "Evil\r\nBcc: victim@example.net", f"Evil{RLO}moc.lapyap"):
        tenant = await fresh_tenant(served_core, name)
        email = f"{tenant.slug}@example.com"
        await served_core.customers.ensure_customer(tenant.id, email)
        async with served.client(tenant.slug) as client:
            answer = await client.post("/portal/sign-in", data={"email": email})
        assert answer.status_code == 200, answer.text
        message = await wait_mail(served.inbox, email)  # the mail still goes out
        assert getaddresses(message.get_all("From")) == [("", MAIL_FROM)], name
        assert message.get_all("To") == [email] and message.get_all("Bcc") is None
        assert "\r" not in message["Subject"] and "\n" not in message["Subject"]
        assert envelope_sender(served, message) == MAIL_FROM


async def test_a_plain_tenant_name_is_kept_and_the_envelope_is_ours(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant = await fresh_tenant(served_core, "Bücher & Co")
    email = f"{tenant.slug}@example.com"
    await served_core.customers.ensure_customer(tenant.id, email)
    async with served.client(tenant.slug) as client:
        assert (await client.post("/portal/sign-in", data={"email": email})).status_code == 200
    message = await wait_mail(served.inbox, email)
    [(_, address)] = getaddresses(message.get_all("From"))
    assert address == MAIL_FROM and "B=C3=BCcher" in message["From"]  # RFC 2047-encoded
    assert envelope_sender(served, message) == MAIL_FROM


# ------------------------------------------------------------------ row 13: file names
async def _api_submit(
    client: httpx.AsyncClient, form_id: int, files: list, **values: str
) -> httpx.Response:
    definition = await client.get(f"/api/forms/{form_id}")
    assert definition.status_code == 200, definition.text
    data = {
        "name": "Mallory",
        "email": "mallory@example.com",
        "subject": unique("files "),
        "description": "See attached.",
        "form_token": definition.json()["form_token"],
        "idempotency_key": unique("idempotency-key-"),
        **values,
    }
    return await client.post(f"/api/forms/{form_id}/submissions", data=data, files=files)


DANGEROUS_UPLOADS = [
    ("attachments", ("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>")),
    ("attachments", ("page.html", b"<script>alert(document.cookie)</script>")),
    ("attachments", (f"invoice{RLO}fdp.bat", b"del /q C:\\*")),
]


async def test_uploads_that_could_run_are_stored_under_safe_names(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant = served.tenants["acme"]
    form = await served_core.forms.save_form(tenant.id, FormDraft(unique("Upload form ")))
    async with served.client("acme") as client:
        answer = await _api_submit(client, form.id, DANGEROUS_UPLOADS)
    assert answer.status_code == 201, answer.text
    ticket = await ticket_numbered(served_core, tenant, answer.json()["ticket"]["number"])
    [reply] = await served_core.tickets.list_replies(tenant.id, ticket.id)
    assert sorted(a.filename for a in reply.attachments) == [
        "invoicefdp.bat.txt",
        "page.html.txt",
        "x.svg.txt",
    ]


async def test_a_tenant_can_refuse_uploads_that_could_run(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant = await fresh_tenant(served_core, "Strict", attachment_dangerous_names="refuse")
    form = await served_core.forms.save_form(tenant.id, FormDraft("Contact"))
    async with served.client(tenant.slug) as client:
        answer = await _api_submit(client, form.id, DANGEROUS_UPLOADS[1:2])
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"]["attachments"] == (
        "page.html is not accepted: files of this kind can run programs when opened."
    )
    assert (await served_core.tickets.list_tickets(tenant.id)).total == 0


async def test_chat_uploads_that_could_run_are_renamed(served: Served) -> None:
    async with served.client("acme") as client:
        token = (await client.post("/messenger/token", json={})).json()["token"]
        for (_, (name, data)), stored in zip(
            DANGEROUS_UPLOADS,
            ("x.svg.txt", "page.html.txt", "invoicefdp.bat.txt"),
            strict=True,
        ):
            answer = await client.post(
                "/messenger/uploads",
                files={"file": (name, data, "application/octet-stream")},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 201, answer.text
            assert answer.json()["filename"] == stored


# ------------------------------------------------------------------ row 14: addresses
async def test_an_address_that_adds_a_cc_is_refused_by_forms_sign_in_and_chat(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant = served.tenants["acme"]
    form = await served_core.forms.save_form(tenant.id, FormDraft(unique("Address form ")))
    async with served.client("acme") as client:
        for email in (ATTACK_EMAIL, f"moc.elpmaxe{RLO}@evil.example"):
            answer = await _api_submit(client, form.id, [], email=email)
            assert answer.status_code == 422, answer.text
            assert set(answer.json()["errors"]) == {"email"}
        sign_in = await client.post("/portal/sign-in", data={"email": ATTACK_EMAIL})
        assert sign_in.status_code == 400
        token = (await client.post("/messenger/token", json={})).json()["token"]

    visitor = await open_ws(served.url, "/messenger/ws", host=served.host("acme"))
    try:
        await visitor.send("hello", token=token, last_id=0)
        await visitor.expect("ready")
        await visitor.send("start", client_id="attack-1", body="hi", email=ATTACK_EMAIL)
        error = await visitor.expect("error", client_id="attack-1")
        assert error["code"] == "invalid"
    finally:
        await visitor.close()


async def test_agent_mailto_links_are_encoded(served: Served, served_core: EmbeddedCore) -> None:
    # An address stored before the stricter check (or by another core) still cannot add a Cc.
    tenant = served.tenants["acme"]
    ticket = await served_core.tickets.create_ticket(
        tenant.id,
        TicketDraft(unique("Old address "), "body", requester_email=ATTACK_EMAIL),
        unique("old-address-"),
    )
    async with admin_client(served) as client:
        page = await client.get(f"/agent/tickets/{ticket.id}")
    assert page.status_code == 200
    hrefs = re.findall(r'href="(mailto:[^"]*)"', page.text)
    assert hrefs == ["mailto:x%3Fcc%3Dattacker%2540evil.example%26subject%3Dhi@example.com"]


# ------------------------------------------------------------------ row 17: unproved emails
MARK = 'class="email-unverified" title="Unverified: anyone can type any address"'


async def test_agents_see_which_requester_emails_nobody_proved(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant = served.tenants["acme"]
    form = await served_core.forms.save_form(tenant.id, FormDraft(unique("Verify form ")))
    typed = f"{unique('typed')}@example.com"
    async with served.client("acme") as client:
        answer = await _api_submit(client, form.id, [], email=typed)
    assert answer.status_code == 201, answer.text
    typed_ticket = await ticket_numbered(served_core, tenant, answer.json()["ticket"]["number"])

    # A customer who followed the magic link mailed to them has proved the address.
    proved = f"{unique('proved')}@example.com"
    await served_core.customers.ensure_customer(tenant.id, proved)
    async with served.client("acme") as customer:
        assert (await customer.post("/portal/sign-in", data={"email": proved})).status_code == 200
        path = link_path(await wait_mail(served.inbox, proved))
        assert (await customer.get(path)).status_code == 200
        assert (await customer.post(path)).status_code == 303
    proved_ticket = await served_core.tickets.create_ticket(
        tenant.id,
        TicketDraft(unique("Proved "), "body", requester_email=proved),
        unique("proved-"),
    )

    async with admin_client(served) as client:
        typed_page = await client.get(f"/agent/tickets/{typed_ticket.id}")
        proved_page = await client.get(f"/agent/tickets/{proved_ticket.id}")
        listing = await client.get("/agent/tickets", params={"state": "all"})
    assert MARK in typed_page.text
    assert MARK not in proved_page.text and proved in proved_page.text
    assert MARK in row_of(listing.text, typed) and MARK not in row_of(listing.text, proved)


async def test_the_chat_console_has_the_unverified_mark_texts(served: Served) -> None:
    async with admin_client(served) as client:
        page = await client.get("/agent/chats")
    assert page.status_code == 200
    assert '"unverified_title": "Unverified: anyone can type any address"' in page.text
