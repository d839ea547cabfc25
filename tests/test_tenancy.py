"""The Host header picks the tenant; nothing leaks between tenants."""

import pytest

from portal.tenancy import TenantResolver, normalize_host, valid_host


@pytest.mark.parametrize(
    "raw, host",
    [
        ("Acme.Portal.Test:8000", "acme.portal.test"),
        ("support.acme.com.", "support.acme.com"),
        ("[::1]:8000", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
    ],
)
def test_normalize_host(raw, host):
    assert normalize_host(raw) == host


@pytest.mark.both_databases
async def test_subdomains_and_custom_domains_resolve(core):
    acme = await core.tenants.create_tenant("acme", "Acme", domains=("support.acme.com",))
    resolver = TenantResolver(core, "portal.test")
    assert (await resolver.resolve("acme.portal.test")).id == acme.id
    assert (await resolver.resolve("SUPPORT.ACME.COM:443")).id == acme.id
    assert await resolver.resolve("nobody.portal.test") is None
    assert await resolver.resolve("x.acme.portal.test") is None
    assert await resolver.resolve("portal.test") is None


async def test_what_pages_derive_from_a_tenant_is_kept_while_it_is_unchanged(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    resolver = TenantResolver(core, "portal.test")
    built: list[str] = []

    def header(tenant):
        return lambda: built.append(tenant.name) or f"header of {tenant.name}"

    assert resolver.derived(acme, "header", header(acme)) == "header of Acme"
    assert resolver.derived(acme, "header", header(acme)) == "header of Acme"
    read_again = await core.tenants.get_tenant("acme")  # equal, another object
    assert resolver.derived(read_again, "header", header(read_again)) == "header of Acme"
    assert built == ["Acme"]
    renamed = await core.tenants.update_branding(
        acme.id, name="Acme Support", logo_url="", primary_color="#1f6feb"
    )
    assert resolver.derived(renamed, "header", header(renamed)) == "header of Acme Support"
    resolver.forget()  # a tenant.changed event from any process
    assert resolver.derived(renamed, "header", header(renamed)) == "header of Acme Support"
    assert built == ["Acme", "Acme Support", "Acme Support"]


async def test_one_tenants_article_is_a_404_on_another_tenants_host(server):
    acme = await server.tenant("acme", "Acme")
    await server.tenant("globex", "Globex")
    await server.article(acme, "Acme secret sauce", "Only for Acme.", slug="sauce")
    async with server.client("acme.portal.test") as acme_client:
        ok = await acme_client.get("/kb/en/articles/sauce")
        assert ok.status_code == 200 and "Acme secret sauce" in ok.text
    async with server.client("globex.portal.test") as globex_client:
        missing = await globex_client.get("/kb/en/articles/sauce")
        assert missing.status_code == 404
        assert "Acme" not in missing.text and "Globex" in missing.text


async def test_a_malformed_host_never_picks_a_tenant_even_once_resolved_for_tls(server):
    await server.tenant("acme", "Acme")
    hostile = "acme.portal.test:1@evil.com"
    async with server.client() as client:
        # The TLS "ask" resolves what it is given (here, to Acme once normalized)...
        asked = await client.get("/_tls/ask", params={"domain": hostile})
        assert asked.status_code == 200
    async with server.client(hostile) as client:
        page = await client.get("/kb/en/")  # ...but a request naming it is no tenant's
    assert page.status_code == 404 and "Acme" not in page.text


async def test_unknown_host_gets_a_plain_404_page(server):
    await server.tenant("acme", "Acme")
    async with server.client("evil.example.com") as client:
        response = await client.get("/kb/en/")
    assert response.status_code == 404
    assert "No help center here" in response.text
    assert "Acme" not in response.text


async def test_custom_domain_serves_its_tenant_and_tls_ask_knows_it(server):
    acme = await server.tenant("acme", "Acme")
    await server.core.tenants.add_domain(acme.id, "help.acme.com")
    async with server.client("help.acme.com") as client:
        page = await client.get("/kb/en/")
        assert page.status_code == 200 and "Acme" in page.text
        assert (
            await client.get("/_tls/ask", params={"domain": "help.acme.com"})
        ).status_code == 200
        assert (await client.get("/_tls/ask", params={"domain": "evil.com"})).status_code == 404
        assert (await client.get("/_tls/ask")).status_code == 404


async def test_branding_is_applied_to_pages(server):
    acme = await server.tenant("acme", "Acme")
    await server.core.tenants.update_branding(
        acme.id,
        name="Acme <Support>",
        logo_url="https://cdn.acme.com/logo.png",
        primary_color="#ff5500",
    )
    async with server.client() as client:
        page = await client.get("/kb/en/")
    assert "Acme &lt;Support&gt;" in page.text
    assert "--brand: #ff5500" in page.text
    assert 'src="https://cdn.acme.com/logo.png"' in page.text


@pytest.mark.parametrize(
    "host, ok",
    [
        ("acme.portal.test", True),
        ("acme.portal.test:8000", True),
        ("127.0.0.1:80", True),
        ("[::1]:8000", True),
        ("acme.portal.test:1@evil.com", False),
        ("acme.portal.test/x", False),
        ("acme portal", False),
        ("", False),
    ],
)
def test_valid_host(host, ok):
    assert valid_host(host) is ok


async def test_a_malformed_host_header_reaches_no_tenant(server):
    await server.tenant("acme", "Acme")
    async with server.client("acme.portal.test:1@evil.com") as client:
        response = await client.get("/kb/en/")
    assert response.status_code == 404 and "evil.com" not in response.text
