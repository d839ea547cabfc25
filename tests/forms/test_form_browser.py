"""A visitor fills a form in Chromium: departments, suggestions, a file, the reference; iframes."""

from __future__ import annotations

import asyncio

import pytest

from portal.core.contract import Choice, Field, FormDraft
from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.conftest import sqlite_database

pytestmark = [pytest.mark.browser, pytest.mark.live_server]


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    return sqlite_database(tmp_path)


async def test_fill_in_the_form_with_suggestions_and_a_file(server, browser, tmp_path):  # noqa: F811
    core = server.core
    tenant = await core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    sales = await core.forms.create_department(tenant.id, "Sales")
    support = await core.forms.create_department(tenant.id, "Support")
    fields = (
        Field("order_no", "Order number", "text", required=True, department_ids=(sales.id,)),
        Field(
            "product",
            "Product",
            "choice",
            options=(Choice("sw", "Software"), Choice("hw", "Hardware", (support.id,))),
        ),
        Field("screenshot", "Screenshot", "file"),
    )
    form = await core.forms.save_form(tenant.id, FormDraft("Ask us", fields=fields))
    await server.article(tenant, "Printer does not print", "Turn it off and on again.")
    async with server.client("127.0.0.1") as client:
        for _ in range(100):
            found = await client.get(f"/api/forms/{form.id}/suggestions", params={"q": "printer"})
            if found.json()["results"]:
                break
            await asyncio.sleep(0.05)

    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    failed: list[str] = []
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda exc: failed.append(str(exc)))
    await page.goto(f"{server.url}/forms/{form.id}")
    order_no = page.get_by_label("Order number")
    assert not await order_no.is_visible()
    await page.get_by_label("Department").select_option(label="Sales")
    assert await order_no.is_visible()
    assert await page.locator("option[value=hw]").is_disabled()
    await page.get_by_label("Department").select_option(label="Support")
    assert not await order_no.is_visible()
    assert not await page.locator("option[value=hw]").is_disabled()

    await page.get_by_label("Email address").fill("kari@example.com")
    await page.get_by_label("Subject").press_sequentially("printer problem", delay=20)
    suggestion = page.locator("#suggestions a").first
    await suggestion.wait_for()
    await page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
    assert await suggestion.get_attribute("target") == "_blank"
    async with context.expect_page() as opened:
        await suggestion.click()
    article = await opened.value
    await article.wait_for_load_state()
    assert "/kb/en/articles/printer-does-not-print" in article.url
    await article.close()
    for _ in range(100):
        summary = await core.forms.deflection_summary(tenant.id)
        if summary:
            break
        await asyncio.sleep(0.05)
    assert [(row.opened, row.without_ticket) for row in summary] == [(1, 1)]

    await page.get_by_label("Description").fill("It blinks orange.")
    await page.get_by_label("Product").select_option(label="Hardware")
    shot = tmp_path / "shot.txt"
    shot.write_text("error 42")
    await page.get_by_label("Screenshot").set_input_files(str(shot))
    await page.get_by_role("button", name="Send").click()
    await page.wait_for_url("**/thanks?**")
    assert await page.locator(".reference").inner_text() == "#1"
    await page.screenshot(path=str(tmp_path / "thanks.png"), full_page=True)
    assert not failed, failed

    [ticket] = (await core.tickets.list_tickets(tenant.id)).tickets
    assert ticket.department_id == support.id
    assert ticket.custom_fields == {"product": "hw", "screenshot": ["shot.txt"]}
    [row] = await core.forms.deflection_summary(tenant.id)
    assert row.without_ticket == 0
    await context.close()


async def host_site(pages: dict[str, str]):
    """The company's own site: a bare HTTP server (no CSP) on loopback, under another origin."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        body = pages.get(path, "not found").encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_the_embed_variant_shows_on_an_allowed_site_and_no_other(server, browser):  # noqa: F811
    tenant = await server.core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    form = await server.core.forms.save_form(tenant.id, FormDraft("Ask us"))
    src = f"{server.url}/forms/{form.id}?embed=1"
    site = await host_site(
        {"/embed": f'<!doctype html><title>Shop</title><iframe name="form" src="{src}"></iframe>'}
    )
    port = site.sockets[0].getsockname()[1]
    # localhost, not 127.0.0.1: another origin and site, but still loopback for Chromium.
    shop, stranger = f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    await server.core.tenants.update_tenant_settings(tenant.id, {"embed_origins": [shop]})
    await server.sees_tenant(await server.core.tenants.get_tenant("demo"))
    page = await browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    try:
        for origin, expected in ((shop, True), (stranger, False)):
            await page.goto(origin + "/embed")
            await page.wait_for_load_state("load")
            # The element's own frame: a frame refused by frame-ancestors is replaced by an error
            # page, and looking it up by name can miss it while that happens.
            element = await page.wait_for_selector("iframe[name=form]", state="attached")
            frame = await element.content_frame()
            assert frame is not None
            await frame.wait_for_load_state("load")
            shown = frame.url.startswith(server.url) and await frame.locator("h1").count() == 1
            assert shown is expected, origin
            if expected:  # send it from inside the iframe: the form token, no cookies
                await frame.get_by_label("Email address").fill("kari@example.com")
                await frame.get_by_label("Subject").fill("From the shop")
                await frame.get_by_label("Description").fill("Sent inside an iframe.")
                await frame.get_by_role("button", name="Send").click()
                await frame.wait_for_url("**/thanks?**")
                assert await frame.locator(".reference").inner_text() == "#1"
        assert len(blocked) == 1  # the site not on the list, refused by frame-ancestors
    finally:
        await page.close()
        site.close()
        await site.wait_closed()
