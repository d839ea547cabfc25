"""Chromium from Debian driven by Playwright; no browser download."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.conftest import service_missing, start_server, stop_server

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


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not os.path.exists(CHROMIUM):
        service_missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        the_browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield the_browser
        await the_browser.close()


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
