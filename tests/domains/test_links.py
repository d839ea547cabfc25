"""Links in mail: only verified domains count; a request's link stays on the customer's host."""

from __future__ import annotations

from starlette.requests import Request

from portal.urls import request_tenant_url, tenant_url
from tests.conftest import BASE_DOMAIN


def request_on(server, host: str, tenant) -> Request:
    """A request as the tenancy middleware leaves it: `tenant` found by its Host header."""
    state = {"services": server.state["services"], "tenant": tenant}
    headers = [(b"host", host.encode())]
    return Request(
        {"type": "http", "method": "POST", "path": "/", "headers": headers, "state": state}
    )


async def test_mail_links_use_the_first_verified_domain_only(server):
    settings = server.service("settings")
    acme = await server.tenant()
    await server.core.tenants.add_domain(acme.id, "pending.example.test", verified=False)
    acme = await server.core.tenants.get_tenant("acme")
    assert tenant_url(settings, acme, "/x") == f"http://acme.{BASE_DOMAIN}:8000/x"
    await server.core.tenants.add_domain(acme.id, "support.example.test", verified=False)
    await server.core.tenants.set_domain_status(acme.id, "support.example.test", "verified")
    acme = await server.core.tenants.get_tenant("acme")
    assert tenant_url(settings, acme, "/x") == "http://support.example.test:8000/x"


async def test_a_requests_link_follows_the_host_the_customer_is_on(server):
    acme = await server.tenant()
    globex = await server.tenant("globex", "Globex")
    await server.core.tenants.add_domain(acme.id, "support.example.test", verified=False)
    await server.core.tenants.set_domain_status(acme.id, "support.example.test", "verified")
    acme = await server.core.tenants.get_tenant("acme")
    on_domain = request_on(server, "Support.Example.test:4443", acme)
    # The customer's host, not the port the client sent (the configured one in development).
    assert request_tenant_url(on_domain, acme, "/p") == "http://support.example.test:8000/p"
    on_subdomain = request_on(server, f"acme.{BASE_DOMAIN}", acme)
    assert request_tenant_url(on_subdomain, acme, "/p") == f"http://acme.{BASE_DOMAIN}:8000/p"
    # A request that is not this tenant's never lends its host: the canonical one instead.
    elsewhere = request_on(server, f"globex.{BASE_DOMAIN}", globex)
    assert request_tenant_url(elsewhere, acme, "/p") == "http://support.example.test:8000/p"
    malformed = request_on(server, "support.example.test:1@evil.test", acme)
    assert request_tenant_url(malformed, acme, "/p") == "http://support.example.test:8000/p"
