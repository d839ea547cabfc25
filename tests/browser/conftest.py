"""Chromium from Debian driven by Playwright; no browser download.

Starting Playwright and Chromium costs ~0.9 s, several times what most browser tests take
themselves. A module whose tests share one Chromium (each still gets its own context: cookies,
storage and cache apart) runs in one event loop and overrides `browser` and `server`:

    pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
    browser = module_browser
    server = module_loop_server
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings
from tests.conftest import (
    Server,
    serve_app,
    service_missing,
    sqlite_database,
    start_server,
    stop_server,
)

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    """Chromium, launched by Playwright, until the block ends."""
    if not os.path.exists(CHROMIUM):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        the_browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield the_browser
        finally:
            await the_browser.close()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as the_browser:
        yield the_browser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_browser() -> AsyncIterator[object]:
    """One Chromium for a module's tests (see the module docstring)."""
    async with chromium() as the_browser:
        yield the_browser


@pytest_asyncio.fixture(loop_scope="module")
async def module_loop_server(settings: Settings, tmp_path: Path) -> AsyncIterator[Server]:
    """`live_server` (a fresh SQLite core, the app on uvicorn) in the module's event loop."""
    from portal.app import create_app

    core = EmbeddedCore(sqlite_database(tmp_path))
    await core.start()
    try:
        async with serve_app(create_app(settings, core=core), settings, core, live=True) as served:
            yield served
    finally:
        await core.close()


@pytest.fixture
def server(live_server):
    """A browser needs a real socket: every `server` here is a uvicorn on loopback."""
    return live_server


@asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    """Serve `app` with uvicorn while the block runs; yields its base URL."""
    server, task, url = await start_server(app)
    try:
        yield url
    finally:
        await stop_server(server, task)
