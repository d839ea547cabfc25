"""/admin/domains against a real DNS server (dnsmasq): add, the state and what to fix, check
again, remove; served only while verified; the TLS ask follows."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest

from portal.settings import Settings
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.conftest import BASE_DOMAIN, sqlite_database
from tests.domains.conftest import TENANT_HOST

EMAIL, PASSWORD = "boss@acme.test", "boss password 123"
PATH = "/admin/domains"


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite: the page reads what every core offers; the core's part runs on both databases."""
    return sqlite_database(tmp_path)


@pytest.fixture
def settings(settings: Settings, dns_server) -> Settings:
    return replace(settings, dns_servers=dns_server.address)


@pytest.fixture
async def admin(server):
    tenant = await server.tenant()
    await server.agent(tenant, EMAIL, PASSWORD)
    async with server.client() as client:
        assert (await log_in(client, EMAIL, PASSWORD)).status_code == 303
        yield client, tenant


async def post(client, data: dict[str, str], path: str = PATH):
    token = hidden(TOKEN_RE, (await client.get(PATH)).text)
    return await client.post(path, data={**data, "csrf_token": token})


def row(page: str, domain: str) -> tuple[str, str]:
    """(status, what the admin is told) of a domain's row on the page."""
    match = re.search(
        rf'<tr data-domain="{re.escape(domain)}" data-status="([a-z]+)">(.*?)</tr>', page, re.S
    )
    assert match, f"no row for {domain} on the page"
    reason = re.search(r'<p class="[a-z]+ domain-reason">(.*?)</p>', match.group(2), re.S)
    return match.group(1), html.unescape(reason.group(1)) if reason else ""


def field_error(page: str) -> str:
    match = re.search(r'<p class="error" id="f-domain-error">(.*?)</p>', page, re.S)
    assert match, "no error for the domain field on the page"
    return html.unescape(match.group(1))


async def served(server, host: str) -> tuple[int, int]:
    """(status of the help center on `host`, status of the TLS ask for it)."""
    async with server.client(host) as client:
        page = await client.get("/kb/en/")
        ask = await client.get("/_tls/ask", params={"domain": host})
    return page.status_code, ask.status_code


async def test_the_page_shows_the_cname_to_create(admin):
    client, _ = admin
    page = await client.get(PATH)
    assert page.status_code == 200
    assert f'href="{PATH}" aria-current="page"' in page.text  # in the admin menu
    assert f'<code id="cname-target">{TENANT_HOST}</code>' in page.text
    assert "No custom domains yet" in page.text


async def test_a_good_cname_is_verified_and_served_at_once(admin, server):
    client, tenant = admin
    assert await served(server, "support.example.test") == (404, 404)
    added = await post(client, {"domain": "Support.Example.test"})
    assert added.status_code == 303 and added.headers["location"].endswith("?done=added")
    page = (await client.get(PATH + "?done=added")).text
    assert "The domain is added and checked" in page
    assert row(page, "support.example.test") == ("verified", "")
    assert await served(server, "support.example.test") == (200, 200)
    async with server.client("support.example.test") as visitor:
        home = await visitor.get("/kb/en/")
    assert "Acme" in home.text
    # Canonical links follow the domain the visitor is on.
    assert 'rel="canonical" href="http://support.example.test/kb/en/"' in home.text
    # Mail links use the first verified domain.
    fresh = await server.core.tenants.get_tenant(tenant.slug)
    assert fresh.domains == ("support.example.test",)


@pytest.mark.parametrize(
    "domain, status, told",
    [
        (
            "none.example.test",
            "pending",
            "No CNAME or A record for none.example.test yet: "
            f"create CNAME none.example.test → {TENANT_HOST}.",
        ),
        (
            "wrong.example.test",
            "failed",
            f"wrong.example.test points at elsewhere.test, not at {TENANT_HOST}: "
            f"change its CNAME to {TENANT_HOST}.",
        ),
        (
            "caa.example.test",
            "failed",
            "A CAA record allows only ca.example.net to issue certificates for "
            'caa.example.test; add `0 issue "letsencrypt.org"`.',
        ),
    ],
)
async def test_a_domain_that_is_not_ours_yet_says_what_to_fix_and_is_not_served(
    admin, server, domain, status, told
):
    client, _ = admin
    assert (await post(client, {"domain": domain})).status_code == 303
    page = (await client.get(PATH)).text
    assert row(page, domain) == (status, told)
    assert f"<code>{domain} CNAME {TENANT_HOST}</code>" in page
    assert await served(server, domain) == (404, 404)


async def test_check_now_verifies_a_domain_once_its_record_is_right(admin, server):
    client, tenant = admin
    # Added as pending by the core (the record "was not there yet"), then checked on request.
    await server.core.tenants.add_domain(tenant.id, "hop.example.test", verified=False)
    assert await served(server, "hop.example.test") == (404, 404)
    checked = await post(client, {"domain": "hop.example.test"}, PATH + "/check")
    assert checked.status_code == 303 and checked.headers["location"].endswith("?done=checked")
    assert row((await client.get(PATH)).text, "hop.example.test") == ("verified", "")
    assert await served(server, "hop.example.test") == (200, 200)


async def test_a_removed_domain_is_no_longer_served(admin, server):
    client, _ = admin
    await post(client, {"domain": "apex.example.test"})
    assert await served(server, "apex.example.test") == (200, 200)
    removed = await post(client, {"domain": "apex.example.test"}, PATH + "/remove")
    assert removed.status_code == 303 and removed.headers["location"].endswith("?done=removed")
    page = (await client.get(PATH + "?done=removed")).text
    assert "apex.example.test" not in page.split("<h2>")[2]  # not in the list
    assert await served(server, "apex.example.test") == (404, 404)


@pytest.mark.parametrize(
    "typed, error",
    [
        ("", "Enter a domain, such as support.example.com."),
        ("not a domain!", "Use a domain name only"),
        ("support.example.test:8443", "Use a domain name only"),
        (f"help.{BASE_DOMAIN}", f"Names under {BASE_DOMAIN} are ours already."),
    ],
)
async def test_bad_input_is_a_400_with_the_field_error(admin, typed, error):
    client, _ = admin
    answer = await post(client, {"domain": typed})
    assert answer.status_code == 400
    assert field_error(answer.text).startswith(error)
    assert "Please correct the fields marked below." in answer.text


async def test_what_the_admin_typed_is_escaped(admin):
    client, _ = admin
    answer = await post(client, {"domain": '<script>alert(1)</script>"'})
    assert answer.status_code == 400
    assert "<script>alert(1)" not in answer.text
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;&#34;"' in answer.text


async def test_a_domain_of_another_tenant_is_refused_and_left_alone(admin, server):
    client, _ = admin
    globex = await server.tenant("globex", "Globex")
    await server.core.tenants.add_domain(globex.id, "wrong.example.test", verified=False)
    answer = await post(client, {"domain": "wrong.example.test"})
    assert answer.status_code == 400
    assert field_error(answer.text) == "This domain is registered already."
    for action in ("/check", "/remove"):
        refused = await post(client, {"domain": "wrong.example.test"}, PATH + action)
        assert refused.status_code == 400 and "There is no such domain." in refused.text
    [kept] = await server.core.tenants.list_domains(globex.id)
    assert (kept.domain, kept.status, kept.checked_at) == ("wrong.example.test", "pending", None)


async def test_the_operators_domains_are_listed_but_not_the_admins_to_change(admin, server):
    client, tenant = admin
    await server.core.tenants.add_domain(tenant.id, "desk.acme.test")  # the operator's word
    page = (await client.get(PATH)).text
    assert row(page, "desk.acme.test") == ("operator", "")
    assert "Set up by your provider" in page
    for action in ("/check", "/remove"):
        refused = await post(client, {"domain": "desk.acme.test"}, PATH + action)
        assert refused.status_code == 400
    assert await served(server, "desk.acme.test") == (200, 200)


async def test_a_post_without_the_csrf_token_is_refused(admin, server):
    client, tenant = admin
    answer = await client.post(PATH, data={"domain": "support.example.test"})
    assert answer.status_code == 403
    assert await server.core.tenants.list_domains(tenant.id) == []


async def test_a_signed_out_visitor_is_sent_to_the_login(server):
    await server.tenant()
    async with server.client() as client:
        answer = await client.get(PATH)
    assert answer.status_code == 303 and "/admin/login" in answer.headers["location"]


async def test_the_tls_ask_answers_for_existing_tenants_hosts_only(server):
    await server.tenant()
    async with server.client() as client:
        for domain, status in [
            (TENANT_HOST, 200),  # an existing tenant's own host
            (f"nobody.{BASE_DOMAIN}", 404),  # no such tenant: no certificate for made-up names
            (BASE_DOMAIN, 404),
            ("unknown.example.test", 404),
            ("", 404),
        ]:
            answer = await client.get("/_tls/ask", params={"domain": domain})
            assert answer.status_code == status, domain
