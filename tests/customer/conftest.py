"""The customer portal (in process; on a real socket for `live_server` tests), with a real SMTP
server for its mail."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urlsplit

import httpx
import pytest

from portal.core.contract import Tenant, Ticket, TicketDraft
from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, Inbox, Server, serve_app, wants_live_server

HOST = f"acme.{BASE_DOMAIN}"
CSRF_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
KEY_RE = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]+)">')
LINK_RE = re.compile(r"https?://\S+/portal/sign-in/(\S+)")
CODE_RE = re.compile(r"\b([A-Z2-7]{4}-[A-Z2-7]{4})\b")


@dataclass
class Portal:
    server: Server
    smtp: Inbox
    settings: Settings
    tenant: Tenant

    @property
    def core(self) -> EmbeddedCore:
        return self.server.core

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, host: str = HOST, **kwargs: object) -> httpx.AsyncClient:
        return self.server.client(host, **kwargs)

    async def ticket(
        self, email: str, subject: str = "Printer is broken", *, key: str | None = None
    ) -> Ticket:
        draft = TicketDraft(subject=subject, description=f"About: {subject}", requester_email=email)
        return await self.core.tickets.create_ticket(
            self.tenant.id, draft, key or f"{email}:{subject}"
        )

    async def settings_changed(self, **changes: object) -> None:
        """Change tenant settings and wait until the app's tenant cache has the new ones."""
        self.tenant = await self.server.settings_changed(self.tenant, changes)


def mail_text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


async def wait_mail(
    inbox: Inbox,
    to: str,
    match: Callable[[Message], bool] = lambda m: True,
    *,
    seen: int = 0,
    timeout: float = 5.0,
) -> Message:
    """The first message to `to` after the first `seen` ones that satisfies `match`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mine = [m for m in inbox.messages if m["To"] == to][seen:]
        for message in mine:
            if match(message):
                return message
        if loop.time() > deadline:
            raise AssertionError(f"no matching mail to {to}; got {[m['Subject'] for m in mine]}")
        await asyncio.sleep(0.02)


def mails_to(inbox: Inbox, to: str) -> list[Message]:
    return [m for m in inbox.messages if m["To"] == to]


def link_path(message: Message) -> str:
    """The path of the sign-in link in a mail (the host in mail is the tenant's, not ours)."""
    match = LINK_RE.search(mail_text(message))
    assert match, mail_text(message)
    return urlsplit(match.group(0)).path


def code_in(message: Message) -> str:
    match = CODE_RE.search(mail_text(message))
    assert match, mail_text(message)
    return match.group(1)


def csrf_from(page: str) -> str:
    found = CSRF_RE.findall(page)
    assert found, "no CSRF token on the page"
    return html.unescape(found[0])


def key_from(page: str) -> str:
    found = KEY_RE.findall(page)
    assert found, "no idempotency key on the page"
    return html.unescape(found[0])


async def request_link(client: httpx.AsyncClient, email: str, **data: str) -> httpx.Response:
    return await client.post("/portal/sign-in", data={"email": email, **data})


async def sign_in(client: httpx.AsyncClient, portal: Portal, email: str) -> httpx.Response:
    """Sign in the way a customer does: ask for a link, open it from the mail, confirm."""
    seen = len(mails_to(portal.smtp, email))
    answer = await request_link(client, email)
    assert answer.status_code == 200, answer.text
    message = await wait_mail(portal.smtp, email, seen=seen)
    path = link_path(message)
    confirm = await client.get(path)
    assert confirm.status_code == 200, confirm.text
    done = await client.post(path)
    assert done.status_code == 303, done.text
    return done


@pytest.fixture
async def portal(
    request: pytest.FixtureRequest, settings: Settings, core: EmbeddedCore, smtp: Inbox
) -> AsyncIterator[Portal]:
    from portal.app import create_app

    mail_settings = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.tenants.create_tenant("acme", "Acme")
    app = create_app(mail_settings, core=core)
    live = wants_live_server(request)
    async with serve_app(app, mail_settings, core, live=live) as server:
        yield Portal(server, smtp, mail_settings, tenant)
