"""Help center pages are rendered once per variant and kept: what a visitor sees is still the
page as it is now (articles, categories, branding, the header), in every process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from portal.core.contract import ArticleDraft
from portal.kb.pages import _FeedbackKeys, feedback_key
from portal.kb.store import KnowledgeBase, RenderedPage
from tests.conftest import (
    BASE_DOMAIN,
    customer_cookie,
)
from tests.kb.test_routes import wait_searchable
from tests.two_processes import two_apps, two_cores

KEY_RE = re.compile(r'name="key" value="([^"]+)"')


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0):
    """Wait until `check()` holds: changes reach caches through events, in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.02)


@pytest.fixture
async def acme(server):
    tenant = await server.tenant("acme", "Acme")
    await server.article(tenant, "Reset your password", "Open *Settings*.", slug="reset")
    return tenant


async def test_each_answer_of_a_kept_article_has_its_own_feedback_key(server, acme):
    async with server.client() as client:
        first, second = [(await client.get("/kb/en/articles/reset")).text for _ in range(2)]
    keys = [KEY_RE.search(page)[1] for page in (first, second)]
    assert keys[0] != keys[1] and all(len(key) >= 16 for key in keys)
    assert first.replace(keys[0], "") == second.replace(keys[1], "")


@pytest.mark.parametrize("path", ["/kb/en/articles/reset", "/kb/en/", "/kb/en/search?q=reset"])
async def test_kept_pages_go_gzipped_as_kept_to_clients_that_take_gzip(server, acme, path):
    async with server.client() as client:
        await wait_searchable(client, "reset")  # the index follows the article in the background
        zipped = await client.get(path, headers={"accept-encoding": "gzip"})
        plain = await client.get(path, headers={"accept-encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(zipped.content)  # (decoded by httpx)
    assert "content-encoding" not in plain.headers
    for answer in (zipped, plain):  # a shared cache must tell the two apart
        assert answer.headers["vary"] == "Accept-Encoding"
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert KEY_RE.sub("", zipped.text) == KEY_RE.sub("", plain.text)


async def test_a_changed_article_replaces_its_kept_pages(server, acme):
    async with server.client() as client:
        assert "Open <em>Settings</em>." in (await client.get("/kb/en/articles/reset")).text
        await client.get("/kb/en/")
        await client.get("/kb/en/categories/general")
        await server.article(acme, "Reset your password", "Choose *Forgot*.", slug="reset")
        await server.article(acme, "Export your data", "Open *Export*.", slug="export")

        async def shown(path: str, text: str) -> bool:
            return text in (await client.get(path)).text

        await eventually(lambda: shown("/kb/en/articles/reset", "Choose <em>Forgot</em>."), "")
        assert await shown("/kb/en/", "Export your data")
        assert await shown("/kb/en/categories/general", "Export your data")
        await wait_searchable(client, "export")
        assert await shown("/kb/en/search?q=export", "Export your data")


async def test_a_branding_change_replaces_kept_pages(server, acme):
    async with server.client() as client:
        assert (
            "<title>Reset your password · Acme</title>"
            in (await client.get("/kb/en/articles/reset")).text
        )
        await server.core.tenants.update_branding(
            acme.id, name="Acme Support", logo_url="", primary_color="#ff5500"
        )
        await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
        page = (await client.get("/kb/en/articles/reset")).text
    assert "<title>Reset your password · Acme Support</title>" in page
    assert "--brand: #ff5500" in page


async def test_the_header_and_the_host_of_a_visitor_pick_their_own_kept_page(
    server, acme, settings
):
    customer = await server.core.customers.ensure_customer(acme.id, "kari@example.com", "Kari")
    cookie = await customer_cookie(server.core, settings.secret_key, customer)
    await server.core.tenants.add_domain(acme.id, "help.acme.com")
    async with server.client() as client:
        anonymous = (await client.get("/kb/en/articles/reset")).text
        signed_in = (await client.get("/kb/en/articles/reset", headers={"cookie": cookie})).text
    async with server.client("help.acme.com") as client:
        custom_domain = (await client.get("/kb/en/articles/reset")).text
    assert "Sign in" in anonymous and "My tickets" not in anonymous
    assert "My tickets" in signed_in
    canonical = 'rel="canonical" href="http://{}/kb/en/articles/reset"'
    assert canonical.format(f"acme.{BASE_DOMAIN}") in anonymous
    assert canonical.format("help.acme.com") in custom_domain


async def test_a_page_made_while_a_change_lands_is_not_kept(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    kb = KnowledgeBase(core)
    before = kb.generation(tenant.id)  # a page's reads start...
    kb.invalidate(tenant.id)  # ...an article changes before it is rendered...
    kb.keep("variant", before, RenderedPage(tenant, (b"stale",)))
    assert kb.rendered(tenant, "variant") is None  # ...so it is never served
    kb.keep("variant", kb.generation(tenant.id), RenderedPage(tenant, (b"fresh",)))
    assert kb.rendered(tenant, "variant").body() == b"fresh"


async def test_a_change_made_in_another_process_replaces_kept_pages(tmp_path, redis):
    async with two_cores(tmp_path) as cores:
        tenant = await cores[1].tenants.create_tenant("acme", "Acme")
        await cores[1].kb.save_article(tenant.id, ArticleDraft("en", "reset", "Reset", "Old way."))
        secret = "test-secret-key-that-is-long-enough-0123456789"
        async with two_apps(tmp_path, cores, redis.url, secret) as (a, _b), a.client() as client:

            async def a_shows(text: str) -> bool:
                return text in (await client.get("/kb/en/articles/reset")).text

            assert await a_shows("Old way.")
            # Written through the other process: its events reach this one by the hub.
            await cores[1].kb.save_article(
                tenant.id, ArticleDraft("en", "reset", "Reset", "New way.")
            )
            await eventually(lambda: a_shows("New way."), "the article change")
            await cores[1].tenants.update_branding(
                tenant.id, name="Acme Support", logo_url="", primary_color="#1f6feb"
            )
            await eventually(lambda: a_shows("Reset · Acme Support"), "the branding change")


def test_feedback_keys_stay_distinct_across_the_batches_read_from_the_os():
    keys = [feedback_key() for _ in range(3 * _FeedbackKeys.BATCH + 5)]
    assert len(set(keys)) == len(keys)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", key) for key in keys)
