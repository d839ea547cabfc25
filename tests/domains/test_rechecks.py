"""Periodic re-checks by the app's own background task, against a DNS server whose records
change: a pending domain becomes verified, a verified one that stops pointing at us becomes
failed and stops being served, and is verified again once it points back."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from portal.settings import Settings
from tests.conftest import sqlite_database
from tests.domains.conftest import TENANT_HOST, our_zone

DOMAIN = "moving.example.test"


@pytest.fixture
def database_url(tmp_path) -> str:
    return sqlite_database(tmp_path)


@pytest.fixture
def settings(settings: Settings, own_dns_server) -> Settings:
    # Due again one second after a check: the background task's pace in this test.
    return replace(settings, dns_servers=own_dns_server.address, domain_recheck_seconds="1")


def pointing_at(target: str):
    zone = our_zone()
    zone.cnames[DOMAIN] = target
    return zone


async def until_served(server, expected: tuple[int, int], timeout: float = 20.0) -> None:
    """Wait until the help center and the TLS ask on DOMAIN answer `expected`."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with server.client(DOMAIN) as client:
        while True:
            page = await client.get("/kb/en/")
            ask = await client.get("/_tls/ask", params={"domain": DOMAIN})
            if (page.status_code, ask.status_code) == expected:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{DOMAIN} still answers {page.status_code}/{ask.status_code}")
            await asyncio.sleep(0.05)


async def test_the_background_task_follows_dns(server, own_dns_server):
    acme = await server.tenant()
    own_dns_server.restart(pointing_at(TENANT_HOST))
    await server.core.tenants.add_domain(acme.id, DOMAIN, verified=False)  # never checked
    await until_served(server, (200, 200))

    own_dns_server.restart(pointing_at("elsewhere.test"))  # it stops pointing at us
    await until_served(server, (404, 404))
    [domain] = await server.core.tenants.list_domains(acme.id)
    assert (domain.status, domain.reason, domain.detail) == (
        "failed",
        "wrong_target",
        "elsewhere.test",
    )
    assert (await server.core.tenants.get_tenant("acme")).domains == ()  # no mail links to it

    own_dns_server.restart(pointing_at(TENANT_HOST))  # fixed at the DNS provider
    await until_served(server, (200, 200))
    [domain] = await server.core.tenants.list_domains(acme.id)
    assert (domain.status, domain.reason) == ("verified", "")
