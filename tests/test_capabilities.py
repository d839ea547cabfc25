"""The apps hide what the core lacks: chat, ratings, attachments, organization-wide tickets.

Each test runs the real app twice over, on an embedded core that has the feature and on one
that claims not to (`EmbeddedCore(url, capabilities=...)`), so the assertions are seen to hold
both ways: shown with the feature, hidden (or 404) without it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from websockets.exceptions import InvalidStatus

from portal.app import create_app
from portal.app_switches import APP_ROUTES, SwitchGate
from portal.capabilities import FEATURE_ROUTES, Gate, wrapped_by
from portal.core.contract import (
    Capabilities,
    Choice,
    Field,
    FormDraft,
    HelpdeskCore,
    NotFound,
    TicketDraft,
    Unavailable,
)
from portal.core.embedded.core import EmbeddedCore
from portal.customer import links
from portal.security import Signer
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, Server, customer_cookie, serve_app, staff_cookie
from tests.customer.conftest import csrf_from, key_from
from tests.messenger.conftest import open_ws

HOST = f"acme.{BASE_DOMAIN}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def lacking(feature: str | None) -> Capabilities:
    return dataclasses.replace(Capabilities(), **({feature: False} if feature else {}))


@asynccontextmanager
async def app_on(
    core: HelpdeskCore, database_url: str, settings: Settings, *, live: bool = False
) -> AsyncIterator[Server]:
    """The app over `core` (started and closed here), as the `server` fixture serves it."""
    await core.start()
    try:
        app = create_app(settings, core=core)
        async with serve_app(app, settings, core, live=live) as served:  # type: ignore[arg-type]
            yield served
    finally:
        await core.close()


@pytest.fixture(params=[True, False], ids=["with", "without"])
def has(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def endpoints(routes: list[BaseRoute]) -> list[Route | WebSocketRoute]:
    found: list[Route | WebSocketRoute] = []
    for route in routes:
        if isinstance(route, Mount):
            found += endpoints(route.routes)
        elif isinstance(route, Route | WebSocketRoute):
            found.append(route)
    return found


def test_each_gated_route_exists_and_is_gated_once() -> None:
    assert set(FEATURE_ROUTES) <= {field.name for field in dataclasses.fields(Capabilities)}
    create_app(Settings(secret_key="x" * 40))
    app = create_app(Settings(secret_key="y" * 40))  # a second app, on the same route objects
    routes = {route.name: route for route in endpoints(app.routes)}
    for feature, names in FEATURE_ROUTES.items():
        for name in names:
            gate = routes[name].app
            if isinstance(gate, SwitchGate):  # the tenant's switch of the app, outside
                gate = gate.app
            assert isinstance(gate, Gate) and feature in gate.features, name
            assert not isinstance(gate.app, Gate | SwitchGate), name
    for app_name, names in APP_ROUTES.items():
        for name in names:
            switch = routes[name].app
            assert isinstance(switch, SwitchGate) and switch.switched == app_name, name
            assert not wrapped_by(switch.app, SwitchGate), name


def signed_in(server: Server, cookie: str) -> httpx.AsyncClient:
    client = server.client(HOST)
    client.headers["cookie"] = cookie
    return client


def messenger_config(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="messenger-config">(.*?)</script>', page)
    assert found, "no messenger config on the page"
    return json.loads(found.group(1))


# ------------------------------------------------------------------------------------- chat
async def test_without_chat_the_messenger_answers_404_and_is_offered_nowhere(
    database_url: str, settings: Settings, has: bool
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else "chat"))
    async with app_on(core, database_url, settings) as server:
        await server.tenant()
        async with server.client(HOST) as client:
            page = await client.get("/messenger")
            token = await client.post("/messenger/token", json={})
            config = (await client.get("/widget/config.json")).json()
            help_center = await client.get("/kb/en/")
            console = await client.get("/agent/chats", follow_redirects=False)
            chat_settings = await client.get("/admin/chat", follow_redirects=False)
    assert page.status_code == token.status_code == (200 if has else 404)
    assert ("chat" in config["apps"]) is has
    assert help_center.status_code == 200
    assert ('href="/messenger"' in help_center.text) is has
    assert (console.status_code == 404) is not has
    assert (chat_settings.status_code == 404) is not has


@pytest.mark.live_server
async def test_without_chat_the_visitor_socket_is_refused(
    database_url: str, settings: Settings, has: bool
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else "chat"))
    async with app_on(core, database_url, settings, live=True) as server:
        await server.tenant()
        if has:
            ws = await open_ws(server.url, "/messenger/ws")
            await ws.close()
            return
        with pytest.raises(InvalidStatus) as refused:
            await open_ws(server.url, "/messenger/ws")
        assert refused.value.response.status_code == 404


class Refusing:
    """A chat domain that records every use: an app on a core without chat must not call it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        self.calls.append(name)
        return getattr(Unavailable("chat"), name)


async def test_a_core_assembled_without_chat_serves_every_other_app(
    database_url: str, settings: Settings
) -> None:
    embedded = EmbeddedCore(database_url)
    chat = Refusing()
    core = HelpdeskCore(
        tenants=embedded.tenants,
        kb=embedded.kb,
        customers=embedded.customers,
        tickets=embedded.tickets,
        forms=embedded.forms,
        chat=chat,  # type: ignore[arg-type]
        capabilities=lacking("chat"),
        backends=[embedded],
    )
    async with app_on(core, database_url, settings) as server:
        tenant = await server.tenant()
        await server.article(tenant, "Reset your password", "Open the settings.")
        form = await embedded.forms.save_form(tenant.id, FormDraft("Contact us"))
        async with server.client(HOST) as client:
            answers = [
                await client.get(path)
                for path in (
                    "/widget.js",
                    "/widget/panel",
                    "/kb/en/",
                    "/kb/en/articles/reset-your-password",
                    f"/forms/{form.id}",
                    "/portal/sign-in",
                    "/admin/login",
                )
            ]
            gone = await client.get("/messenger")
    assert [a.status_code for a in answers] == [200] * len(answers)
    assert gone.status_code == 404
    assert chat.calls == []
    with pytest.raises(NotFound):
        await Unavailable("chat").list_conversations(tenant.id)


# ----------------------------------------------------------------------------------- ratings
async def resolved_ticket(server: Server, email: str = "kim@example.com") -> tuple[int, str]:
    """A resolved ticket of a new tenant's customer, and that customer's cookie."""
    tenant = await server.tenant()
    ticket = await server.core.tickets.create_ticket(
        tenant.id, TicketDraft("Printer", "It jams.", email), "t1"
    )
    await server.core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
    customer = await server.core.customers.find_customer(tenant.id, email)
    secret = server.service("settings").secret_key
    return ticket.id, await customer_cookie(server.core, secret, customer)


async def test_without_ratings_a_ticket_has_no_rating_form(
    database_url: str, settings: Settings, has: bool
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else "ratings"))
    async with app_on(core, database_url, settings) as server:
        ticket_id, cookie = await resolved_ticket(server)
        tenant = await server.core.tenants.get_tenant("acme")
        link = links.make_rating_link(Signer(settings.secret_key), tenant.id, ticket_id, True)
        async with signed_in(server, cookie) as client:
            page = await client.get(f"/portal/tickets/{ticket_id}")
            rate = await client.post(
                f"/portal/tickets/{ticket_id}/rating",
                data={"csrf_token": csrf_from(page.text), "good": "1"},
            )
            by_mail = await client.get(f"/portal/rate/{link}")
    assert page.status_code == 200
    assert ('id="rating"' in page.text) is has
    assert rate.status_code == (303 if has else 404)
    assert by_mail.status_code == (200 if has else 404)
    assert (await server_rating(core, tenant.id, ticket_id)) is has


async def server_rating(core: EmbeddedCore, tenant_id: int, ticket_id: int) -> bool:
    return await core.tickets.get_rating(tenant_id, ticket_id) is not None


# ------------------------------------------------------------------------------- attachments
async def test_without_attachments_there_is_no_file_input_anywhere(
    database_url: str, settings: Settings, has: bool
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else "attachments"))
    async with app_on(core, database_url, settings) as server:
        ticket_id, cookie = await resolved_ticket(server)
        tenant = await server.core.tenants.get_tenant("acme")
        screenshot = Field("screenshot", "Screenshot", "file", required=True)
        priority = Field("area", "Area", "choice", options=(Choice("a", "A"),))
        form = await server.core.forms.save_form(
            tenant.id, FormDraft("Contact us", fields=(screenshot, priority))
        )
        async with signed_in(server, cookie) as client:
            ticket_page = await client.get(f"/portal/tickets/{ticket_id}")
            form_page = await client.get(f"/forms/{form.id}")
            definition = (await client.get(f"/api/forms/{form.id}")).json()
            messenger = await client.get("/messenger")
            sent = await client.post(
                f"/portal/tickets/{ticket_id}/replies",
                data={
                    "csrf_token": csrf_from(ticket_page.text),
                    "idempotency_key": key_from(ticket_page.text),
                    "body": "Here is a screenshot.",
                },
                files=[("files", ("shot.png", PNG, "image/png"))],
            )
            upload = await client.post(
                "/messenger/uploads", files={"file": ("shot.png", PNG, "image/png")}
            )
    for page in (ticket_page, form_page):
        assert page.status_code == 200
        assert ('type="file"' in page.text) is has
    standard = [f["key"] for f in definition["standard_fields"]]
    assert ("attachments" in standard) is has
    assert ("screenshot" in [f["key"] for f in definition["fields"]]) is has
    assert bool(messenger_config(messenger.text)["upload_url"]) is has
    assert sent.status_code == (303 if has else 400)
    replies = await core.tickets.list_replies(tenant.id, ticket_id)
    assert (replies[-1].body == "Here is a screenshot.") is has
    if not has:
        assert upload.status_code == 404


# --------------------------------------------------------------------- organization tickets
async def test_without_organization_tickets_a_customer_sees_only_their_own(
    database_url: str, settings: Settings, has: bool
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else "organization_tickets"))
    async with app_on(core, database_url, settings) as server:
        tenant = await server.tenant()
        await server.core.tenants.update_tenant_settings(
            tenant.id, {"ticket_visibility": "organization"}
        )
        org = await server.core.customers.create_organization(tenant.id, "Acme Corp")
        tickets = {}
        for email in ("alice@acme-corp.example", "bob@acme-corp.example"):
            customer = await server.core.customers.ensure_customer(tenant.id, email)
            await server.core.customers.set_customer_organization(tenant.id, customer.id, org.id)
            tickets[email] = await server.core.tickets.create_ticket(
                tenant.id, TicketDraft(f"From {email}", "Help.", email), email
            )
        alice = await server.core.customers.find_customer(tenant.id, "alice@acme-corp.example")
        await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
        cookie = await customer_cookie(server.core, settings.secret_key, alice)
        async with signed_in(server, cookie) as client:
            listing = await client.get("/portal/tickets")
            colleagues = await client.get(f"/portal/tickets/{tickets['bob@acme-corp.example'].id}")
    assert listing.status_code == 200
    assert ("From bob@acme-corp.example" in listing.text) is has
    assert ("Requested by" in listing.text) is has
    assert "From alice@acme-corp.example" in listing.text
    assert colleagues.status_code == (200 if has else 404)


# --------------------------------------------------------------------------- the admin's pages
@pytest.mark.parametrize("feature", ["organization_tickets", "attachments"])
async def test_the_admin_offers_no_setting_of_a_missing_feature(
    database_url: str, settings: Settings, has: bool, feature: str
) -> None:
    core = EmbeddedCore(database_url, capabilities=lacking(None if has else feature))
    async with app_on(core, database_url, settings) as server:
        tenant = await server.tenant()
        await server.agent(tenant, "admin@acme.example", "correct horse battery staple")
        cookie = await staff_cookie(server.core, settings.secret_key, tenant, "admin@acme.example")
        async with signed_in(server, cookie) as client:
            settings_page = await client.get("/admin/settings")
            form_page = await client.get("/admin/forms/new")
    assert settings_page.status_code == form_page.status_code == 200
    if feature == "organization_tickets":
        assert ('name="ticket_visibility"' in settings_page.text) is has
    else:
        assert ('name="attachment_max_bytes"' in settings_page.text) is has
        assert ('name="attachment_dangerous_names"' in settings_page.text) is has
        assert ('<option value="file"' in form_page.text) is has
