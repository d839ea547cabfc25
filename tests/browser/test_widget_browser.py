"""The widget in Chromium, on a host page of another origin than the service.

The service runs on 127.0.0.1, the company's site on 127.0.0.2 (another origin and site, both
loopback): the snippet's script tag, hostile CSS and a strict CSP are the site's, as they would
be on a real customer's site.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from portal.core.contract import Tenant
from tests.browser.conftest import module_browser, module_loop_server

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
browser = module_browser  # one Chromium for the module; each test has its own context
server = module_loop_server

SNIPPET = (
    '<script nonce="n0nce">window.PortalWidget=window.PortalWidget||function(){'
    "(PortalWidget.q=PortalWidget.q||[]).push(arguments)}</script>\n"
    '<script nonce="n0nce" async src="{service}/widget.js"></script>'
)
HOSTILE_CSS = (
    "div, span, button, iframe, a {display: none !important}\n"
    "button {background: red; font-size: 40px; border: 9px solid lime}\n"
    "html {font-size: 8px}\n"
)


@asynccontextmanager
async def host_site(pages: dict[str, tuple[str, str]], csp: str = "") -> AsyncIterator[str]:
    """The company's site on 127.0.0.2: path -> (content type, body), served with `csp`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode().split("?")[0]
        kind, body = pages.get(path, ("text/plain", "not found"))
        data = body.encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            + f"Content-Type: {kind}\r\nContent-Length: {len(data)}\r\n".encode()
            + f"Content-Security-Policy: {csp}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.2", 0)
    origin = f"http://127.0.0.2:{server.sockets[0].getsockname()[1]}"
    try:
        yield origin
    finally:
        server.close()
        await server.wait_closed()


def page_html(service: str, body: str = "<h1>Shop</h1>", twice: bool = False) -> str:
    snippet = SNIPPET.replace("{service}", service)
    scripts = snippet + ("\n" + snippet if twice else "")
    return (
        '<!doctype html><html lang="en"><head><title>Shop</title>'
        '<link rel="stylesheet" href="/hostile.css">'
        f"{scripts}</head><body>{body}"
        '<p><a href="/other">Other page</a></p></body></html>'
    )


async def launcher(page):  # type: ignore[no-untyped-def]
    button = page.locator("portal-help-widget button.launch")
    await button.wait_for(state="visible")
    return button


async def panel_frame(page):  # type: ignore[no-untyped-def]
    element = await page.wait_for_selector("portal-help-widget iframe", state="attached")
    frame = await element.content_frame()
    assert frame is not None
    await frame.wait_for_load_state("load")
    return frame


def strict_csp(service: str) -> str:
    """A site that allows no inline style at all, and scripts only by nonce or from us."""
    return (
        f"default-src 'self'; script-src 'self' 'nonce-n0nce' {service}; style-src 'self'; "
        f"frame-src {service}; connect-src 'self' {service}; img-src 'self' data:"
    )


RECORD_VIOLATIONS = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation', e =>"
    " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest_asyncio.fixture(loop_scope="module")
async def shop(server, browser):  # type: ignore[no-untyped-def]
    """(the site's origin, the service's URL, the tenant, a page) with the widget on /."""
    tenant: Tenant = await server.core.tenants.create_tenant(
        "demo", "Demo Co", domains=("127.0.0.1",)
    )
    service = server.url
    pages = {
        "/": ("text/html", page_html(service)),
        "/twice": ("text/html", page_html(service, twice=True)),
        "/long": ("text/html", page_html(service, body="<h1>Shop</h1>" + "<p>Text.</p>" * 300)),
        "/hostile.css": ("text/css", HOSTILE_CSS),
    }
    async with host_site(pages, strict_csp(service)) as origin:
        await server.core.tenants.update_tenant_settings(tenant.id, {"embed_origins": [origin]})
        context = await browser.new_context(locale="en-US")
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        yield origin, service, tenant, page
        await context.close()


async def test_nothing_happens_before_the_first_click(shop):
    origin, service, _tenant, page = shop
    requests: list[str] = []
    responses: list = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: responses.append(r) if r.url.startswith(service) else None)
    await page.goto(origin + "/")
    button = await launcher(page)
    assert [u for u in requests if u.startswith(service)] == [service + "/widget.js"]
    # Everything a page fetches from us before the first click, gzipped: at most 10 KB.
    fetched = [await r.body() for r in responses]
    assert sum(len(gzip.compress(body, 9)) for body in fetched) <= 10 * 1024
    assert len(page.frames) == 1  # no iframe
    assert await page.context.cookies() == []
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    # The hostile CSS reached neither the launcher's look nor its size.
    style = await button.evaluate(
        "b => { const s = getComputedStyle(b); return [s.fontSize, s.backgroundColor, s.display] }"
    )
    assert style == ["16px", "rgb(31, 111, 235)", "flex"]
    await button.click()
    frame = await panel_frame(page)
    assert await frame.locator("h1").inner_text() == "How can we help?"
    assert await page.evaluate("window.__violations") == []


async def test_the_panel_lists_the_apps_and_searches_in_chinese(shop, server):
    origin, _service, tenant, page = shop
    await server.article(
        tenant, "如何重置密码", "忘记密码时，请在登录页面点击“忘记密码”。", language="zh-Hans"
    )
    await page.goto(origin + "/")
    await (await launcher(page)).click()
    frame = await panel_frame(page)
    apps = await frame.locator(".apps button").all_inner_texts()
    assert apps == ["Chat with us", "My tickets"]  # no form in this help desk
    await frame.locator("#q").fill("密码")
    await frame.locator("#results a", has_text="如何重置密码").click()
    article = frame.frame_locator("#app-frame")
    await article.locator("h1", has_text="如何重置密码").wait_for()  # read in the panel
    assert await frame.locator("#title").inner_text() == "如何重置密码"


async def test_the_host_page_opens_an_article(shop, server):
    origin, _service, tenant, page = shop
    await server.article(tenant, "Reset your password", "Open **Settings**.", slug="reset")
    await page.goto(origin + "/")
    await launcher(page)
    await page.evaluate("PortalWidget('open', 'article', 'reset')")
    frame = await panel_frame(page)
    article = frame.frame_locator("#app-frame")
    await article.locator("h1", has_text="Reset your password").wait_for()
    assert await article.locator("strong").inner_text() == "Settings"


async def test_loaded_twice_gives_one_launcher(shop):
    origin, _service, _tenant, page = shop
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    await page.goto(origin + "/twice")
    await launcher(page)
    await page.wait_for_function("window.PortalWidget && window.PortalWidget.loaded")
    assert await page.locator("portal-help-widget").count() == 1
    assert any("included twice" in w for w in warnings)


async def test_keyboard_only(shop):
    origin, _service, _tenant, page = shop
    await page.goto(origin + "/")
    button = await launcher(page)
    await button.focus()
    await page.keyboard.press("Enter")
    frame = await panel_frame(page)
    from playwright.async_api import expect

    # A locator's check, not a string evaluated in the page: the panel's CSP forbids eval.
    await expect(frame.locator("#q")).to_be_focused()
    for _ in range(8):  # past every control: focus stays in the panel
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.tagName") == "PORTAL-HELP-WIDGET"
        assert await frame.evaluate("document.hasFocus()")
    await page.keyboard.press("Escape")
    await page.wait_for_function(
        "document.activeElement.tagName === 'PORTAL-HELP-WIDGET' &&"
        " document.activeElement.shadowRoot.activeElement.className === 'launch'"
    )
    assert await button.get_attribute("aria-expanded") == "false"
    assert not await page.locator("portal-help-widget .panel").is_visible()


async def test_single_page_navigation_keeps_the_open_chat(shop):
    origin, _service, _tenant, page = shop
    await page.goto(origin + "/")
    await (await launcher(page)).click()
    frame = await panel_frame(page)
    await frame.locator("[data-app=chat]").click()
    await frame.evaluate("window.__kept = 'yes'")
    await page.evaluate("history.pushState({}, '', '/other')")
    await page.evaluate("window.dispatchEvent(new PopStateEvent('popstate'))")
    assert page.url.endswith("/other")
    assert await frame.evaluate("window.__kept") == "yes"  # the same panel, not a new one
    assert await page.locator("portal-help-widget").count() == 1
    assert await frame.locator("#app-frame").get_attribute("src") is not None


async def test_an_admin_colour_change_shows_after_a_reload(shop, server):
    origin, _service, tenant, page = shop
    await page.goto(origin + "/")
    button = await launcher(page)
    await server.core.tenants.update_branding(
        tenant.id, name="Demo Co", logo_url="", primary_color="#aa3300"
    )
    await page.reload()
    button = await launcher(page)
    color = await button.evaluate("b => getComputedStyle(b).backgroundColor")
    assert color == "rgb(170, 51, 0)"


async def test_a_site_may_give_the_launcher_its_own_colour_and_side(shop):
    origin, _service, _tenant, page = shop
    await page.goto(origin + "/")
    button = await launcher(page)
    right = await button.evaluate("b => b.getBoundingClientRect().right")
    await page.evaluate("PortalWidget('style', {color: '#aa1100', position: 'left'})")
    assert await button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(170, 17, 0)"
    assert await button.evaluate("b => b.getBoundingClientRect().right") < right
    bad = await page.evaluate(
        "PortalWidget('style', {color: 'red'}).then(() => 'ok', e => e.message)"
    )
    assert "color is #rrggbb" in bad


async def test_the_api_queues_calls_and_rejects_bad_ones(shop):
    origin, _service, _tenant, page = shop
    await page.goto(origin + "/")
    await launcher(page)
    message = await page.evaluate("PortalWidget('fly').then(() => 'resolved', e => e.message)")
    assert message.startswith('PortalWidget: unknown command "fly"')
    bad_app = await page.evaluate("PortalWidget('open', 'shop').then(() => 'ok', e => e.message)")
    assert "open takes" in bad_app
    events = await page.evaluate(
        """async () => {
            const seen = [];
            const off = await PortalWidget('on', 'open', () => seen.push('open'));
            await PortalWidget('open');
            await PortalWidget('close');
            off();
            await PortalWidget('open');
            return seen;
        }"""
    )
    assert events == ["open"]


async def test_an_agent_reply_shows_an_unread_badge_while_the_panel_is_closed(
    shop, server, browser
):
    origin, service, tenant, page = shop
    await server.agent(tenant, "sam@demo.test", "agent-password-1", role="agent")
    console_context = await browser.new_context(locale="en-US")
    try:
        # The agent signs in to the console in a browser of their own.
        agent = await console_context.new_page()
        await agent.goto(service + "/admin/login")
        await agent.locator("#f-email").fill("sam@demo.test")
        await agent.locator("#f-password").fill("agent-password-1")
        await agent.get_by_role("button", name="Sign in").click()
        await agent.wait_for_load_state()
        await agent.goto(service + "/agent/chats")
        await agent.locator("#chats-presence-dot.is-online").wait_for()

        # The visitor asks through the widget on the company's site.
        await page.goto(origin + "/")
        await launcher(page)
        await page.evaluate(
            "window.__unread = []; PortalWidget('on', 'unread', n => __unread.push(n))"
        )
        await _start_chat(page, "Where is my order?")

        # The agent gets it, sees the page the visitor is on, and answers after the visitor
        # closed the panel.
        item = agent.locator("#chats-list .chats-item", has_text="Where is my order?")
        await item.click()
        await agent.locator("#chats-log li[data-id]", has_text="Where is my order?").wait_for()
        await agent.locator("#chats-page", has_text="Shop").wait_for()
        await (await launcher(page)).click()  # closed: the chat stays connected behind it
        box = agent.get_by_label("Message", exact=True)
        await box.fill("On its way!")
        await box.press("Enter")

        badge = page.locator("portal-help-widget .badge")
        await badge.wait_for(state="visible")
        assert await badge.inner_text() == "1"
        assert await page.evaluate("__unread") == [1]
        label = await (await launcher(page)).get_attribute("aria-label")
        assert "1 New messages" in label
        await (await launcher(page)).click()  # opened again: read
        await badge.wait_for(state="hidden")
    finally:
        await console_context.close()


# ------------------------------------------------------------------ identify
def _token(key: object, kid: str, alg: str, **claims: object) -> str:
    import time

    import jwt

    now = int(time.time())
    payload = {"external_id": "u-42", "email": "kim@example.com", "name": "Kim", "iat": now,
               "exp": now + 600, **claims}  # fmt: skip
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]


async def _my_tickets(page, token: str):  # type: ignore[no-untyped-def]
    """Identify with `token`, open "My tickets"; the app's frame."""
    import json

    await launcher(page)
    await page.evaluate(f"PortalWidget('identify', {json.dumps(token)})")
    await (await launcher(page)).click()
    frame = await panel_frame(page)
    await frame.locator("[data-app=tickets]").click()
    return frame.frame_locator("#app-frame")


@pytest_asyncio.fixture(loop_scope="module")
async def keys(shop, server):  # type: ignore[no-untyped-def]
    """An HS256 secret and an ES256 key pair of the tenant's, and a ticket of Kim's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from portal.core.contract import TicketDraft

    _origin, _service, tenant, _page = shop
    secret = "s" * 40
    hs = await server.core.customers.add_widget_key(tenant.id, "hs-1", "HS256", secret, None)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    await server.core.customers.add_widget_key(tenant.id, "es-1", "ES256", None, pem)
    await server.core.tickets.create_ticket(
        tenant.id, TicketDraft("Printer on fire", "Help!", "kim@example.com"), "kim-1"
    )
    return {"secret": secret, "private": private, "hs": hs}


@pytest.mark.parametrize("kind", ["HS256", "ES256"])
async def test_an_identified_user_sees_their_tickets(shop, keys, kind):
    origin, _service, _tenant, page = shop
    token = (
        _token(keys["secret"], "hs-1", "HS256")
        if kind == "HS256"
        else _token(keys["private"], "es-1", "ES256")
    )
    await page.goto(origin + "/")
    tickets = await _my_tickets(page, token)
    await tickets.get_by_text("Printer on fire").wait_for()


@pytest.mark.parametrize("case", ["expired", "wrong key", "alg none"])
async def test_a_bad_token_leaves_the_visitor_anonymous(shop, keys, case):
    import jwt

    origin, _service, _tenant, page = shop
    if case == "expired":
        token = _token(keys["secret"], "hs-1", "HS256", exp=1_000_000_000, iat=999_999_000)
    elif case == "wrong key":
        token = _token("another secret of forty characters......", "hs-1", "HS256")
    else:
        token = jwt.encode(
            {"external_id": "u-42", "email": "kim@example.com", "exp": 4_000_000_000},
            None,  # type: ignore[arg-type]
            algorithm="none",
            headers={"kid": "hs-1"},
        )
    await page.goto(origin + "/")
    async with page.expect_console_message(lambda m: "identify refused" in m.text):
        tickets = await _my_tickets(page, token)
    await tickets.locator("input[name=email]").wait_for()  # the sign-in form, not the tickets
    assert await tickets.get_by_text("Printer on fire").count() == 0


async def test_keys_rotate(shop, keys, server):
    origin, _service, tenant, page = shop
    new = await server.core.customers.add_widget_key(tenant.id, "hs-2", "HS256", "n" * 40, None)
    assert new.kid == "hs-2"
    await server.core.customers.delete_widget_key(tenant.id, keys["hs"].id)
    await page.goto(origin + "/")
    async with page.expect_console_message(lambda m: "identify refused" in m.text):
        tickets = await _my_tickets(page, _token(keys["secret"], "hs-1", "HS256"))
    await tickets.locator("input[name=email]").wait_for()
    await page.goto(origin + "/")
    tickets = await _my_tickets(page, _token("n" * 40, "hs-2", "HS256"))
    await tickets.get_by_text("Printer on fire").wait_for()


async def test_on_a_phone_the_panel_fills_the_screen_and_closing_keeps_the_scroll(shop, browser):
    origin, _service, _tenant, _page = shop
    context = await browser.new_context(viewport={"width": 360, "height": 640})
    page = await context.new_page()
    try:
        await page.goto(origin + "/long")
        await page.evaluate("window.scrollTo(0, 500)")
        await (await launcher(page)).click()
        frame = await panel_frame(page)
        box = await page.locator("portal-help-widget .panel").bounding_box()
        assert box == {"x": 0, "y": 0, "width": 360, "height": 640}
        size = await frame.evaluate("getComputedStyle(document.getElementById('q')).fontSize")
        assert size == "16px"  # iOS zooms into smaller inputs
        await frame.locator("#close").click()
        await page.locator("portal-help-widget button.launch").wait_for(state="visible")
        assert await page.evaluate("window.scrollY") == 500
    finally:
        await context.close()


async def _start_chat(page, question: str):  # type: ignore[no-untyped-def]
    """Open the widget's chat and ask `question`; the chat's frame locator."""
    await (await launcher(page)).click()
    frame = await panel_frame(page)
    await frame.locator("[data-app=chat]").click()
    chat = frame.frame_locator("#app-frame")
    await chat.locator("#msgr-question").fill(question)
    await chat.get_by_role("button", name="Start chat").click()
    await chat.locator("#msgr-log li", has_text=question).first.wait_for()
    return chat


async def test_the_chat_continues_after_a_reload_from_the_host_pages_storage(shop):
    origin, service, _tenant, page = shop
    await page.goto(origin + "/")
    await launcher(page)
    await _start_chat(page, "Is the blue rake in stock?")
    key = f"portal-widget:{service}"
    await page.wait_for_function(f"localStorage.getItem({key!r}) !== null")
    await page.reload()
    await (await launcher(page)).click()
    frame = await panel_frame(page)
    await frame.locator("[data-app=chat]").click()
    chat = frame.frame_locator("#app-frame")
    # The same visitor: the conversation comes back with its message.
    await chat.locator("#msgr-log li", has_text="Is the blue rake in stock?").first.wait_for()


async def test_without_consent_the_chat_keeps_nothing_on_the_device(shop):
    origin, _service, _tenant, page = shop
    await page.goto(origin + "/")
    await launcher(page)
    await page.evaluate("PortalWidget('consent', 'none')")
    await _start_chat(page, "Hello?")
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert await page.context.cookies(origin) == []
