"""The apps' iframe variants: who may frame them, what they leave out, and their links."""

from __future__ import annotations

import re

SITE = "https://www.acme.example"


async def test_the_help_center_in_an_iframe_has_no_site_chrome_and_keeps_its_links(server):
    acme = await server.tenant("acme", "Acme")
    await server.article(acme, "Reset your password", "Open the settings.", category="Account")
    acme = await server.settings_changed(acme, {"embed_origins": [SITE]})
    async with server.client() as client:
        framed = (await client.get("/kb/en/?embed=1")).text
        page = (await client.get("/kb/en/")).text  # the kept pages of both variants stay apart
        article = (await client.get("/kb/en/articles/reset-your-password?embed=1")).text
        search = (await client.get("/kb/en/search?q=password&embed=1")).text
    assert 'class="site-header"' in page and "frame.js" not in page
    assert 'class="site-header"' not in framed and 'class="languages"' not in framed
    assert f'data-sites="{SITE}"' in framed and 'data-any="0"' in framed
    links = re.findall(r'href="(/kb/[^"]*)"', framed + article + search)
    assert links and all(link.endswith("embed=1") for link in links), links
    assert '<input type="hidden" name="embed" value="1">' in search  # a new search stays framed
    assert '<input type="hidden" name="embed" value="1">' in article  # so does the feedback


async def test_every_customer_app_may_be_framed_by_the_tenants_sites_and_staff_pages_not(server):
    acme = await server.tenant("acme", "Acme")
    await server.settings_changed(acme, {"embed_origins": [SITE]})
    async with server.client() as client:
        for path in ("/kb/en/?embed=1", "/kb/en/", "/messenger?embed=1", "/portal/sign-in?embed=1"):
            csp = (await client.get(path)).headers["content-security-policy"]
            assert f"frame-ancestors 'self' {SITE}" in csp, path
        for path in ("/admin/login", "/agent/"):
            csp = (await client.get(path)).headers["content-security-policy"]
            assert csp.endswith("frame-ancestors 'self'"), path


async def test_the_feedback_of_a_framed_article_comes_back_framed(server):
    acme = await server.tenant("acme", "Acme")
    await server.article(acme, "Reset your password", "Open the settings.")
    async with server.client() as client:
        page = (await client.get("/kb/en/articles/reset-your-password?embed=1")).text
        key = re.search(r'name="key" value="([^"]+)"', page).group(1)
        sent = await client.post(
            "/kb/en/articles/reset-your-password/feedback",
            data={"key": key, "helpful": "yes", "embed": "1"},
        )
    assert sent.status_code == 303
    assert sent.headers["location"].endswith("?feedback=thanks&embed=1#feedback")


async def test_redirects_of_the_help_center_keep_the_iframe_variant(server):
    await server.tenant("acme", "Acme")
    async with server.client() as client:
        root = await client.get("/kb/?embed=1")
        alias = await client.get("/kb/no/search?q=passord&embed=1")
    assert root.headers["location"] == "/kb/en/?embed=1"
    assert alias.headers["location"] == "/kb/nb/search?q=passord&embed=1"
