"""The customer portal over real HTTP, with a real SMTP server for its mail."""

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
from tests.conftest import BASE_DOMAIN, Inbox, start_server, stop_server

HOST = f"acme.{BASE_DOMAIN}"
CSRF_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
KEY_RE = re.compile(r'<input type="hidden" name="idempotency_key" value="([^"]+)">')
LINK_RE = re.compile(r"https?://\S+/portal/sign-in/(\S+)")
CODE_RE = re.compile(r"\b([A-Z2-7]{4}-[A-Z2-7]{4})\b")


@dataclass
class Portal:
    url: str
    core: EmbeddedCore
    smtp: Inbox
    settings: Settings
    tenant: Tenant

    def client(self, host: str = HOST, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"host": host}, **kwargs)  # type: ignore[arg-type]

    async def ticket(
        self, email: str, subject: str = "Printer is broken", *, key: str | None = None
    ) -> Ticket:
        draft = TicketDraft(subject=subject, description=f"About: {subject}", requester_email=email)
        return await self.core.create_ticket(self.tenant.id, draft, key or f"{email}:{subject}")

    async def settings_changed(self, **changes: object) -> None:
        """Change tenant settings and wait until the app's tenant cache has the new ones."""
        await self.core.update_tenant_settings(self.tenant.id, dict(changes))
        self.tenant = await self.core.get_tenant(self.tenant.slug)
        await asyncio.sleep(0.1)  # the app drops its tenant cache on the core's event


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
async def portal(settings: Settings, core: EmbeddedCore, smtp: Inbox) -> AsyncIterator[Portal]:
    from portal.app import create_app

    mail_settings = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.create_tenant("acme", "Acme")
    server, task, url = await start_server(create_app(mail_settings, core=core))
    yield Portal(url, core, smtp, mail_settings, tenant)
    await stop_server(server, task)
