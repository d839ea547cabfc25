"""The header menu every standalone page shares, and the article's "Still need help?" box."""

from __future__ import annotations

import re

import pytest

from portal.core.contract import FormDraft
from portal.navigation import NavItem, SiteNav
from tests.conftest import customer_cookie, sqlite_database

NAV_RE = re.compile(r'<nav class="site-nav"[^>]*>(.*?)</nav>', re.S)
LINK_RE = re.compile(r'<a href="([^"]*)"( aria-current="page")?>([^<]*)</a>')
HELP_RE = re.compile(r'<aside class="still-need-help".*?</aside>', re.S)


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: these pages read what every core offers; tests/core runs both databases."""
    return sqlite_database(tmp_path)


def nav(html: str) -> list[tuple[str, str, bool]]:
    """(label, url, current) of each item of the page's header menu; [] when there is none."""
    found = NAV_RE.findall(html)
    assert len(found) <= 1, "one header menu per page"
    return [
        (label, url, bool(cur)) for url, cur, label in LINK_RE.findall(found[0] if found else "")
    ]


def labels(html: str) -> list[str]:
    return [label for label, _url, _current in nav(html)]


def current(html: str) -> list[str]:
    return [label for label, _url, is_current in nav(html) if is_current]


@pytest.fixture
async def site(server):
    """Acme with an article and two forms; the first is the contact form."""
    tenant = await server.tenant()
    await server.article(tenant, "Reset your password", "Click *Forgot password*.")
    first = await server.core.forms.save_form(tenant.id, FormDraft(title="Write to us"))
    await server.core.forms.save_form(tenant.id, FormDraft(title="Report a bug"))
    return tenant, first


async def test_every_standalone_page_shows_the_same_menu_with_the_current_app(server, site):
    tenant, form = site
    expected = [
        ("Help center", "/kb/en/", False),
        ("Contact us", f"/forms/{form.id}", False),
        ("Chat", "/messenger", False),
        ("Sign in", "/portal/sign-in", False),
    ]
    pages = {
        "/kb/en/": "Help center",
        "/kb/en/articles/reset-your-password": "Help center",
        "/kb/en/search?q=password": "Help center",
        f"/forms/{form.id}": "Contact us",
        "/portal/sign-in": "Sign in",
        "/messenger": "Chat",
    }
    async with server.client() as client:
        for path, here in pages.items():
            page = await client.get(path)
            assert page.status_code == 200, path
            items = nav(page.text)
            assert [(label, url) for label, url, _ in items] == [(lb, u) for lb, u, _ in expected]
            assert current(page.text) == [here], path


async def test_a_signed_in_customer_sees_my_tickets(server, site, settings):
    tenant, _form = site
    customer = await server.core.customers.ensure_customer(tenant.id, "kari@example.com", "Kari")
    cookie = await customer_cookie(server.core, settings.secret_key, customer)
    async with server.client() as client:
        page = await client.get("/portal/tickets", headers={"cookie": cookie})
        assert page.status_code == 200
        assert ("My tickets", "/portal/tickets", True) in nav(page.text)
        assert "Sign in" not in labels(page.text)


async def test_the_chosen_contact_form_is_linked_while_it_exists(server, site):
    tenant, first = site
    second = (await server.core.forms.list_forms(tenant.id))[1]
    await server.core.tenants.update_tenant_settings(tenant.id, {"widget_form_id": second.id})
    async with server.client() as client:
        page = await client.get("/kb/en/")
    assert ("Contact us", f"/forms/{second.id}", False) in nav(page.text)


async def test_a_missing_chosen_form_falls_back_to_the_first(server, site):
    tenant, first = site
    await server.core.tenants.update_tenant_settings(tenant.id, {"widget_form_id": 999_999})
    async with server.client() as client:
        page = await client.get("/kb/en/")
    assert ("Contact us", f"/forms/{first.id}", False) in nav(page.text)


async def test_the_chosen_help_center_language_is_kept_on_the_contact_form(server, site):
    _tenant, form = site
    async with server.client() as client:
        page = await client.get("/kb/nb/", headers={"accept-language": "en"})
    assert f"/forms/{form.id}?lang=nb" in [url for _label, url, _cur in nav(page.text)]


async def test_chat_switched_off_hides_chat(server, site):
    tenant, _form = site
    await server.core.tenants.update_tenant_settings(tenant.id, {"chat_enabled": False})
    async with server.client() as client:
        for path in ("/kb/en/", "/kb/en/articles/reset-your-password", "/messenger"):
            page = await client.get(path)
            assert labels(page.text) == ["Help center", "Contact us", "Sign in"], path
        article = await client.get("/kb/en/articles/reset-your-password")
    box = HELP_RE.search(article.text)
    assert box and "/messenger" not in box.group(0) and "Contact us" in box.group(0)


async def test_no_form_hides_contact_us(server):
    tenant = await server.tenant()
    await server.article(tenant, "Reset your password", "Click *Forgot password*.")
    async with server.client() as client:
        page = await client.get("/kb/en/")
        assert labels(page.text) == ["Help center", "Chat", "Sign in"]
        article = await client.get("/kb/en/articles/reset-your-password")
    box = HELP_RE.search(article.text)
    assert box and "/forms/" not in box.group(0) and 'href="/messenger"' in box.group(0)


async def test_the_tenants_widget_switches_pick_the_apps(server, site):
    tenant, _form = site
    await server.core.tenants.update_tenant_settings(
        tenant.id, {"widget_apps": ["kb", "chat", "form"]}
    )
    async with server.client() as client:
        for path in ("/kb/en/", "/portal/sign-in"):
            page = await client.get(path)
            assert labels(page.text) == ["Help center", "Contact us", "Chat"], path


async def test_without_chat_and_form_an_article_has_no_help_box(server, site):
    tenant, _form = site
    await server.core.tenants.update_tenant_settings(tenant.id, {"widget_apps": ["kb", "tickets"]})
    async with server.client() as client:
        article = await client.get("/kb/en/articles/reset-your-password")
    assert labels(article.text) == ["Help center", "Sign in"]
    assert "Still need help?" not in article.text


async def test_an_article_ends_with_still_need_help(server, site):
    _tenant, form = site
    async with server.client() as client:
        article = await client.get("/kb/en/articles/reset-your-password")
    box = HELP_RE.search(article.text)
    assert box, "no help box"
    assert "Still need help?" in box.group(0)
    assert re.findall(r'href="([^"]*)"', box.group(0)) == ["/messenger", f"/forms/{form.id}"]


async def test_iframe_variants_have_no_menu(server, site):
    _tenant, form = site
    async with server.client() as client:
        for path in (f"/forms/{form.id}?embed=1", "/messenger?embed=1", "/portal/sign-in?embed=1"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert 'class="site-nav"' not in page.text, path


async def test_admin_pages_keep_their_own_menu(server, site):
    async with server.client() as client:
        page = await client.get("/admin/login")
    assert 'class="site-nav"' not in page.text


def test_the_header_items_key_kept_pages_as_their_tuple_would():
    items = [NavItem("Help center", "/kb/en/", "kb", True), NavItem("Chat", "/messenger", "chat")]
    nav, same, other = SiteNav(items), SiteNav(list(items)), SiteNav(items[:1])
    assert nav == same == tuple(items) and hash(nav) == hash(same) == hash(tuple(items))
    assert nav != other
    kept = {("article", "en", nav): "page"}
    assert kept.get(("article", "en", same)) == "page"
    assert kept.get(("article", "en", other)) is None
