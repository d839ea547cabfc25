"""A visitor opens the help center, searches, and reads an article, in Chromium."""

import asyncio

import pytest

from portal.kb.importer import import_folder
from portal.resources import DEMO_ARTICLES_DIR
from tests.conftest import sqlite_database

pytestmark = pytest.mark.browser


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    return sqlite_database(tmp_path)


async def test_search_and_read_an_article(server, browser, tmp_path):
    tenant = await server.core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    report = await import_folder(server.core, tenant.id, DEMO_ARTICLES_DIR)
    assert not report.errors
    async with server.client("127.0.0.1") as client:
        for _ in range(100):
            found = (await client.get("/kb/search.json", params={"q": "password"})).json()
            if found["results"]:
                break
            await asyncio.sleep(0.05)

    page = await browser.new_page(locale="en-US")
    await page.goto(server.url + "/")
    assert page.url.endswith("/kb/en/")
    assert "Demo Co" in await page.title()
    await page.get_by_role("searchbox").fill("password")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/kb/en/search?q=password")
    first = page.locator("ol.results li a").first
    title = await first.inner_text()
    assert await page.locator("ol.results mark").count() > 0
    await first.click()
    await page.wait_for_url("**/kb/en/articles/**")
    assert await page.locator("h1").inner_text() == title
    assert await page.locator(".article-body p").count() > 0
    await page.screenshot(path=str(tmp_path / "article.png"), full_page=True)

    await page.get_by_role("button", name="Yes").click()
    await page.wait_for_url("**feedback=thanks**")
    assert await page.get_by_text("Thank you for your feedback").is_visible()
    await page.close()
