"""Every app's iframe variant in Chromium, framed with the code /admin/apps gives to copy: an
allowed site shows it and sizes the frame to it; any other site is refused by the browser."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from portal.admin.apps import AppEntry, frame_code
from portal.core.contract import FormDraft
from tests.browser.conftest import serving

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.browser

# Each app's embed address, and a heading its page shows.
APPS = [
    ("kb", "/kb/en/?embed=1", "How can we help?"),
    ("form", "/forms/{form}?embed=1", "Contact us"),
    ("chat", "/messenger?embed=1", "Acme"),
    ("tickets", "/portal/sign-in?embed=1", "Sign in to follow your requests"),
]


async def size_mismatches(page: Page) -> list[str]:
    """The iframes not exactly as tall as the page inside them, as "inner vs outer"."""
    found = []
    for index, child in enumerate(page.main_frame.child_frames):
        inner = await child.evaluate(
            "Math.ceil(document.documentElement.getBoundingClientRect().height)"
        )
        outer = await page.evaluate(f"document.querySelectorAll('iframe')[{index}].style.height")
        if outer != f"{inner}px":
            found.append(f"{child.url}: {inner}px inside, {outer} outside")
    return found


async def refusals_missing(page: Page) -> list[str]:
    """The frames the browser has not (yet) replaced by its error page."""
    urls = [child.url for child in page.main_frame.child_frames]
    return [url for url in urls if url != "chrome-error://chromewebdata/"] or (
        [] if len(urls) == len(APPS) else [f"{len(urls)} frames"]
    )


async def until_none(find: Callable[[], Awaitable[list[str]]], timeout: float = 15.0) -> None:
    """Wait until `find` finds nothing wrong; else fail naming what it found last."""
    deadline = asyncio.get_running_loop().time() + timeout
    while found := await find():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still: {found}")
        await asyncio.sleep(0.05)


def company_site(frames: str) -> Starlette:
    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(f"<!doctype html><title>Acme</title><h1>Acme</h1>{frames}")

    return Starlette(routes=[Route("/", home)])


async def test_an_allowed_site_shows_every_app_sized_to_fit_and_another_site_is_refused(
    settings, core, browser
):
    from portal.app import create_app

    tenant = await core.tenants.create_tenant("acme", "Acme", domains=("localhost",))
    form = await core.forms.save_form(tenant.id, FormDraft("Contact us"))
    async with serving(create_app(settings, core=core)) as portal_url:
        origin = portal_url.replace("127.0.0.1", "localhost")  # another site than the company's
        entries = [
            AppEntry(key, key, "", origin + path.format(form=form.id), True)
            for key, path, _heading in APPS
        ]
        frames = "\n".join(frame_code(entry, origin) for entry in entries)
        async with serving(company_site(frames)) as allowed, serving(company_site(frames)) as other:
            await core.tenants.update_tenant_settings(tenant.id, {"embed_origins": [allowed]})
            context = await browser.new_context(locale="en-US")
            try:
                page = await context.new_page()
                await page.goto(allowed + "/")
                for index, (_key, _path, heading) in enumerate(APPS):
                    frame = page.frame_locator("iframe").nth(index)
                    await frame.get_by_role("heading", name=heading).first.wait_for()
                # Each frame's height becomes its page's, as its height message says.
                # Each frame takes its page's height, as that page's height message says.
                await until_none(lambda: size_mismatches(page))

                # Tall enough for every (lazily loaded) frame to load at once.
                refused = await context.new_page()
                await refused.set_viewport_size({"width": 1000, "height": 2400})
                await refused.goto(other + "/")
                await until_none(lambda: refusals_missing(refused))
            finally:
                await context.close()
