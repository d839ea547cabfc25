"""The harness itself: a real `portal serve` answers for both tenants and mails through the sink."""

from __future__ import annotations

from tests.security.conftest import Served


async def test_both_tenants_are_served(served: Served) -> None:
    for slug in ("acme", "globex"):
        async with served.client(slug) as client:
            page = await client.get("/admin/login")
        assert page.status_code == 200
    assert served.rss() > 10 * 1024 * 1024
