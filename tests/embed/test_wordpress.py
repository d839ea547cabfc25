"""The WordPress plugin (embed-examples/wordpress) on a real WordPress, against a real service.

WordPress is Debian's package on MariaDB, served by `php -S` on 127.0.0.2 (tests/embed/conftest.py
makes it once per session); the service is the test's own uvicorn on 127.0.0.1. Pages are fetched
over HTTP as a visitor, a logged-in user or the administrator would; the settings page is used
through its own form; tokens the plugin signs go to the service's real `/widget/identify`.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urlencode, urljoin

import httpx
import pytest

from portal.core.contract import TicketDraft
from tests.agent.test_console import TOKEN_RE, hidden
from tests.conftest import staff_cookie
from tests.embed.conftest import ADMIN, ADMIN_PASSWORD, KIM, KIM_EMAIL, KIM_PASSWORD, Site

QUEUE = (
    "window.PortalWidget=window.PortalWidget||"
    "function(){(PortalWidget.q=PortalWidget.q||[]).push(arguments)}"
)
SCRIPT_TAG_RE = re.compile(r"<script\b[^>]*>")
IDENTIFY_RE = re.compile(r'return d\.token\}\)\}\)\}\)\(("[^"]*"),("[^"]*"),("[^"]*")\);')
AGENT, AGENT_PASSWORD = "admin@demo.test", "agent password 123"


def loaders(page: str) -> list[str]:
    """The script tags on `page` that load the widget."""
    return [tag for tag in SCRIPT_TAG_RE.findall(page) if "/widget.js" in tag]


def attribute(tag: str, name: str) -> str | None:
    found = re.search(rf"\s{name}=(['\"])(.*?)\1", tag)
    return html.unescape(found.group(2)) if found else None


async def admin_of_service(site: Site, secret_key: str) -> httpx.AsyncClient:
    """A client of the service signed in as the tenant's admin."""
    await site.server.agent(site.tenant, AGENT, AGENT_PASSWORD)
    cookie = await staff_cookie(site.server.core, secret_key, site.tenant, AGENT)
    return httpx.AsyncClient(base_url=site.service, headers={"cookie": cookie})


async def identify(site: Site, token: str) -> httpx.Response:
    """POST the token to the service's identify endpoint, as the widget's panel does."""
    async with httpx.AsyncClient(base_url=site.service) as client:
        return await client.post("/widget/identify", json={"token": token})


def identity_call(page: str) -> tuple[str, str, str]:
    """(token, renewal URL, REST nonce) from the identify call on a logged-in user's page."""
    found = IDENTIFY_RE.search(page)
    assert found, "the page has no identify call"
    token, url, nonce = (json.loads(value) for value in found.groups())
    return token, url, nonce


async def wp_admin_form(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """(the settings page, the hidden fields its form posts: option_page, nonce, referer)."""
    page = await client.get("/wp-admin/options-general.php", params={"page": "portal-widget"})
    assert page.status_code == 200, page.text[:2000]
    form = page.text[page.text.index('action="') :]
    inputs = re.findall(r"<input\b[^>]*>", form[: form.index("</form>")])
    hidden_inputs = [tag for tag in inputs if attribute(tag, "type") == "hidden"]
    fields = {attribute(tag, "name") or "": attribute(tag, "value") or "" for tag in hidden_inputs}
    assert {"option_page", "action", "_wpnonce", "_wp_http_referer"} <= fields.keys(), fields
    return page.text, fields


# ------------------------------------------------------------------ the snippet
async def test_the_snippet_is_on_the_pages_chosen_exactly_once(site, settings):
    wp = site.wordpress
    async with await admin_of_service(site, settings.secret_key) as admin:
        ours = html.unescape((await admin.get("/admin/widget")).text)
    assert QUEUE in ours and f'<script async src="{site.service}/widget.js"></script>' in ours

    wp.configure(pages="chosen", page_ids=[wp.pages["home"], wp.pages["help"]])
    async with wp.client() as client:
        front = (await client.get("/")).text
        chosen = (await client.get(wp.page_url("help"))).text
        other = (await client.get(wp.page_url("about"))).text
        assert "Welcome to the shop" in front and "About the shop" in other
        for page in (front, chosen):
            (tag,) = loaders(page)  # exactly once
            assert attribute(tag, "src") == f"{site.service}/widget.js?lang=en"
            assert re.search(r"\sasync[\s>=]", tag), tag
            assert page.count(QUEUE) == 1
            assert page.index(QUEUE) < page.index(tag)  # the queue exists before the loader runs
        assert loaders(other) == [] and "PortalWidget" not in other

        wp.configure(pages="front")
        assert len(loaders((await client.get("/")).text)) == 1
        assert loaders((await client.get(wp.page_url("help"))).text) == []

        wp.configure(pages="all")
        assert len(loaders((await client.get(wp.page_url("about"))).text)) == 1

    # The address the plugin prints is the service's real loader.
    async with httpx.AsyncClient() as client:
        loader = await client.get(f"{site.service}/widget.js?lang=en")
    assert loader.status_code == 200
    assert loader.headers["content-type"].startswith("text/javascript")
    assert "PortalWidget" in loader.text


async def test_the_shortcode_embeds_one_app(site):
    wp = site.wordpress
    async with wp.client() as client:
        page = (await client.get(wp.page_url("help"))).text
    (frame,) = re.findall(r"<iframe\b[^>]*>", page)
    src = attribute(frame, "src")
    assert src == f"{site.service}/kb/?embed=1"
    assert attribute(frame, "title") == "Help center" and "data-portal-frame" in frame
    # The few lines that size the frame, once, trusting the service's origin only.
    assert page.count("portal:height") == 1
    assert f"e.origin!=={json.dumps(site.service)}".replace("/", "\\/") in page

    async with httpx.AsyncClient(follow_redirects=True) as client:
        app = await client.get(src, headers={"sec-fetch-dest": "iframe"})
    assert app.status_code == 200 and "<html" in app.text

    hostile = wp.add_page(
        "Hostile",
        '[portal_app app="form" id="7" height="99999" title=\'Ask " onload="alert(1)\']'
        '[portal_app app="chat" lang="nb"]'
        '[portal_app app="nonsense"][portal_app app="form"]',
    )
    async with wp.client() as client:
        page = (await client.get(f"/?page_id={hostile}")).text
    frames = re.findall(r"<iframe\b[^>]*>", page)
    assert [attribute(f, "src") for f in frames] == [
        f"{site.service}/forms/7?embed=1",
        f"{site.service}/messenger?embed=1",
    ]  # an unknown app, or a form without its id, shows visitors nothing
    assert "onload" not in frames[0].replace("&quot; onload=&quot;", "")
    assert attribute(frames[0], "title") == 'Ask " onload="alert(1)'
    assert "height:4000px" in frames[0]


async def test_the_help_center_frame_stays_the_embed_variant(site):
    async with httpx.AsyncClient(follow_redirects=True) as client:
        app = await client.get(f"{site.service}/kb/?embed=1", headers={"sec-fetch-dest": "iframe"})
    assert app.status_code == 200
    assert "embed=1" in str(app.url)


# ------------------------------------------------------------------ identity
async def test_a_logged_in_users_page_carries_a_token_the_service_accepts(site, settings):
    """The key made in the service's admin, pasted into the plugin's settings page; Kim's page
    then carries a token `/widget/identify` accepts, and the plugin renews it."""
    wp = site.wordpress
    async with await admin_of_service(site, settings.secret_key) as admin:
        keys = await admin.get("/admin/widget/keys")
        made = await admin.post(
            "/admin/widget/keys",
            data={"csrf_token": hidden(TOKEN_RE, keys.text), "action": "generate"},
        )
    kid = html.unescape(re.search(r'id="made-kid" type="text" value="([^"]+)"', made.text)[1])
    secret = html.unescape(re.search(r'id="made-secret" type="text" value="([^"]+)"', made.text)[1])

    async with wp.logged_in(ADMIN, ADMIN_PASSWORD) as wp_admin:
        _page, fields = await wp_admin_form(wp_admin)
        saved = await wp_admin.post(
            "/wp-admin/options.php",
            data={
                **fields,
                "portal_widget_settings[host]": site.service,
                "portal_widget_settings[pages]": "all",
                "portal_widget_settings[position]": "",
                "portal_widget_settings[color]": "",
                "portal_widget_settings[kid]": kid,
                "portal_widget_settings[secret]": secret,
            },
        )
        assert saved.status_code == 302, saved.text[:2000]
        after = await wp_admin.get(saved.headers["location"])
        assert "Settings saved." in after.text
        assert secret not in after.text  # never printed back

    async with wp.client() as anonymous:
        page = (await anonymous.get("/")).text
    assert "identify" not in page and len(loaders(page)) == 1

    async with wp.logged_in(KIM, KIM_PASSWORD) as kim:
        page = (await kim.get(wp.page_url("about"))).text
        token, renew_url, nonce = identity_call(page)
        assert secret not in page
        accepted = await identify(site, token)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["customer"] == {
            "name": "Kim",
            "email": KIM_EMAIL,
            "external_id": str(wp.users["kim"]),
        }

        # The renewal the widget asks for before the token expires: a new token, also accepted.
        renewed = await kim.post(renew_url, headers={"X-WP-Nonce": nonce})
        assert renewed.status_code == 200, renewed.text
        assert "no-cache" in renewed.headers["cache-control"]
        assert (await identify(site, renewed.json()["token"])).status_code == 200
        assert (await kim.post(renew_url)).status_code == 401  # no nonce: not the user's page

    async with wp.client() as anonymous:
        assert (await anonymous.post(renew_url, headers={"X-WP-Nonce": nonce})).status_code in (
            401,
            403,
        )

    # A key deleted in the service's admin: the same plugin's tokens are refused.
    (key,) = await site.server.core.customers.list_widget_keys(site.tenant.id)
    await site.server.core.customers.delete_widget_key(site.tenant.id, key.id)
    refused = await identify(site, token)
    assert refused.status_code == 401 and kid in refused.json()["error"]


# ------------------------------------------------------------------ the settings page
async def test_the_settings_page_cleans_what_it_saves_and_escapes_what_it_prints(site):
    wp = site.wordpress
    async with wp.logged_in(ADMIN, ADMIN_PASSWORD) as admin:
        _page, fields = await wp_admin_form(admin)
        good = {
            **fields,
            "portal_widget_settings[host]": f" {site.service.upper()}/ ",
            "portal_widget_settings[pages]": "chosen",
            "portal_widget_settings[page_ids][]": str(wp.pages["about"]),
            "portal_widget_settings[position]": "left",
            "portal_widget_settings[color]": "#ABC",
            "portal_widget_settings[kid]": "hs-1",
            "portal_widget_settings[secret]": "s" * 43,
        }
        assert (await admin.post("/wp-admin/options.php", data=good)).status_code == 302
        stored = wp.php("return get_option('portal_widget_settings');")
        assert stored == {
            "host": site.service,
            "pages": "chosen",
            "page_ids": [wp.pages["about"]],
            "position": "left",
            "color": "#aabbcc",
            "kid": "hs-1",
            "secret": "s" * 43,
        }

        # Bad values are refused, each with a notice, and what was stored stays.
        _page, fields = await wp_admin_form(admin)
        bad = {
            **fields,
            "portal_widget_settings[host]": "javascript:alert(1)",
            "portal_widget_settings[pages]": "everywhere",
            "portal_widget_settings[position]": "top",
            "portal_widget_settings[color]": "red;}</style>",
            "portal_widget_settings[kid]": "bad kid!",
            "portal_widget_settings[secret]": "short",
        }
        saved = await admin.post("/wp-admin/options.php", data=bad)
        assert saved.status_code == 302
        notices = (await admin.get(saved.headers["location"])).text
        for field in ("host", "pages", "position", "color", "kid", "secret"):
            assert f"setting-error-portal_widget_{field}" in notices, field
        assert "red;}" not in notices  # the refused value is not shown back either
        after = wp.php("return get_option('portal_widget_settings');")
        assert after == {**stored, "page_ids": []}  # no box ticked in that post: none chosen

        # An empty secret keeps the stored one; "forget" drops the key.
        _page, fields = await wp_admin_form(admin)
        await admin.post(
            "/wp-admin/options.php",
            data={
                **fields,
                "portal_widget_settings[secret]": "",
                "portal_widget_settings[kid]": "hs-1",
            },
        )
        assert wp.php("return get_option('portal_widget_settings')['secret'];") == "s" * 43
        _page, fields = await wp_admin_form(admin)
        await admin.post(
            "/wp-admin/options.php",
            data={**fields, "portal_widget_settings[forget_key]": "1"},
        )
        kept = wp.php("return get_option('portal_widget_settings');")
        assert (kept["kid"], kept["secret"]) == ("", "")

        # No nonce, no save.
        refused = await admin.post(
            "/wp-admin/options.php",
            data={k: v for k, v in {**good, **fields}.items() if k != "_wpnonce"},
        )
        assert refused.status_code == 403
        assert wp.php("return get_option('portal_widget_settings')['kid'];") == ""

        # Whatever other code stored, the page prints it escaped.
        payload = '"><script>alert(1)</script>'
        wp.store_raw(
            host="https://x.test/" + payload,
            pages="chosen" + payload,
            page_ids=[wp.pages["home"]],
            position=payload,
            color=payload,
            kid=payload,
            secret=payload,
        )
        page, _fields = await wp_admin_form(admin)
        assert "<script>alert(1)" not in page
        assert 'value="https://x.test/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page

    # ...and the site's pages print none of it: no valid host, no snippet.
    async with wp.client() as client:
        front = (await client.get("/")).text
    assert "<script>alert(1)" not in front and loaders(front) == []


async def test_only_an_administrator_reaches_the_settings(site):
    wp = site.wordpress
    async with wp.logged_in(KIM, KIM_PASSWORD) as kim:
        page = await kim.get("/wp-admin/options-general.php", params={"page": "portal-widget"})
        assert page.status_code == 403
        posted = await kim.post(
            "/wp-admin/options.php",
            data={
                "option_page": "portal_widget",
                "action": "update",
                "_wpnonce": "0123456789",
                "portal_widget_settings[host]": "https://evil.test",
            },
        )
        assert posted.status_code == 403
    assert wp.php("return get_option('portal_widget_settings')['host'];") == site.service


async def test_uninstalling_removes_the_options(site):
    wp = site.wordpress
    code = """
        define('WP_UNINSTALL_PLUGIN', 'portal-widget/portal-widget.php');
        include WP_PLUGIN_DIR . '/portal-widget/uninstall.php';
        return get_option('portal_widget_settings', 'gone');
    """
    assert wp.php(code) == "gone"


# ------------------------------------------------------------------ Chromium
@pytest.mark.browser
async def test_chromium_shows_the_launcher_and_kim_reaches_her_tickets(site, browser):
    wp, core, tenant = site.wordpress, site.server.core, site.tenant
    await core.tickets.create_ticket(
        tenant.id, TicketDraft("Printer on fire", "Help!", KIM_EMAIL), "kim-1"
    )
    await core.customers.add_widget_key(tenant.id, "hs-wp", "HS256", "w" * 43, None)
    wp.configure(color="#aa1100", position="left", kid="hs-wp", secret="w" * 43)

    context = await browser.new_context(locale="en-US", viewport={"width": 1200, "height": 800})
    page = await context.new_page()
    try:
        await page.goto(wp.url + "/")
        button = page.locator("portal-help-widget button.launch")
        await button.wait_for(state="visible")
        assert await page.locator("portal-help-widget").count() == 1
        # The colour and side chosen in WordPress, over the help desk's own.
        await page.wait_for_function(
            "getComputedStyle(document.querySelector('portal-help-widget').shadowRoot"
            ".querySelector('button.launch')).backgroundColor === 'rgb(170, 17, 0)'"
        )
        box = await button.bounding_box()
        assert box is not None and box["x"] + box["width"] < 600  # on the left

        # Kim logs in to WordPress: the widget opens her tickets, signed in.
        about = wp.page_url("about")
        await page.goto(f"{wp.url}/wp-login.php?{urlencode({'redirect_to': about})}")
        await page.fill("#user_login", KIM)
        await page.fill("#user_pass", KIM_PASSWORD)
        async with page.expect_navigation(url=about):
            await page.click("#wp-submit")
        tickets = await open_tickets(page)
        await tickets.get_by_text("Printer on fire").wait_for()

        # She logs out of WordPress: the next page signs the widget out too.
        logout = await page.locator("#wp-admin-bar-logout a").get_attribute("href")
        assert logout is not None
        await page.goto(
            urljoin(wp.url, html.unescape(logout)) + "&" + urlencode({"redirect_to": about})
        )
        assert page.url == about
        tickets = await open_tickets(page)
        await tickets.locator("input[name=email]").wait_for()
        assert await tickets.get_by_text("Printer on fire").count() == 0
    finally:
        await context.close()


async def open_tickets(page):  # type: ignore[no-untyped-def]
    """Click the launcher and open "My tickets"; the app's frame."""
    await page.locator("portal-help-widget button.launch").click()
    element = await page.wait_for_selector("portal-help-widget iframe", state="attached")
    frame = await element.content_frame()
    assert frame is not None
    await frame.wait_for_load_state("load")
    await frame.locator("[data-app=tickets]").click()
    return frame.frame_locator("#app-frame")
