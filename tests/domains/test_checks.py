"""The DNS check against a real resolver (dnsmasq), and what an admin may register."""

from __future__ import annotations

import pytest

from portal.core.contract.tenants import Domain
from portal.domains import (
    BadDomain,
    CheckResult,
    DomainChecker,
    describe,
    next_status,
    parse_domain,
)
from portal.settings import Settings, SettingsError
from tests.conftest import BASE_DOMAIN
from tests.domains.conftest import OTHER_ADDRESS, TENANT_HOST, free_port


def checker(dns_server, issuer: str = "letsencrypt.org") -> DomainChecker:
    return DomainChecker(BASE_DOMAIN, [("127.0.0.1", dns_server.port)], issuer)


@pytest.mark.parametrize(
    "domain, expected",
    [
        ("support.example.test", CheckResult(True)),
        ("hop.example.test", CheckResult(True)),  # CNAME -> CNAME -> the tenant host
        ("apex.example.test", CheckResult(True)),  # A and AAAA equal the base domain's
        ("half.example.test", CheckResult(True)),  # only A, and it is ours
        ("le.example.test", CheckResult(True)),  # CAA allows our issuer (with parameters)
        ("none.example.test", CheckResult(False, "no_record")),
        ("wrong.example.test", CheckResult(False, "wrong_target", "elsewhere.test")),
        ("badapex.example.test", CheckResult(False, "wrong_target", OTHER_ADDRESS)),
        ("caa.example.test", CheckResult(False, "caa", "ca.example.net")),
        # The closest CAA record set climbing towards the root decides: the parent's here.
        ("help.strict.test", CheckResult(False, "caa", "ca.example.net, pki.example.org")),
        # A critical tag nobody understands forbids every issuer.
        ("crit.example.test", CheckResult(False, "caa", "tbs")),
    ],
)
async def test_each_record_gets_its_verdict(dns_server, domain, expected):
    assert await checker(dns_server).check(domain, "acme") == expected


async def test_a_cname_to_another_tenants_host_is_not_ours(dns_server):
    result = await checker(dns_server).check("support.example.test", "globex")
    assert result == CheckResult(False, "wrong_target", TENANT_HOST)


async def test_without_an_issuer_caa_is_not_checked(dns_server):
    assert await checker(dns_server, issuer="").check("caa.example.test", "acme") == CheckResult(
        True
    )
    allowed = await checker(dns_server, issuer="ca.example.net").check("caa.example.test", "acme")
    assert allowed == CheckResult(True)


async def test_a_dns_server_that_does_not_answer_is_a_lookup_error():
    silent = DomainChecker(BASE_DOMAIN, [("127.0.0.1", free_port())], "", lifetime=1.0)
    result = await silent.check("support.example.test", "acme")
    assert not result.ok and result.reason == "lookup_error" and result.detail


@pytest.mark.parametrize(
    "current, result, status",
    [
        ("pending", CheckResult(True), "verified"),
        ("failed", CheckResult(True), "verified"),
        ("pending", CheckResult(False, "no_record"), "pending"),  # the admin is creating it
        ("pending", CheckResult(False, "wrong_target", "x"), "failed"),
        ("verified", CheckResult(False, "no_record"), "failed"),  # stopped pointing at us
        ("verified", CheckResult(False, "caa", "x"), "failed"),
        ("verified", CheckResult(False, "lookup_error", "Timeout"), "verified"),  # our hiccup
        ("pending", CheckResult(False, "lookup_error", "Timeout"), "pending"),
    ],
)
def test_what_a_check_does_to_the_status(current, result, status):
    assert next_status(current, result) == status


@pytest.mark.parametrize(
    "typed, domain",
    [
        ("support.example.com", "support.example.com"),
        ("  Support.Example.COM. ", "support.example.com"),
        ("https://support.example.com/", "support.example.com"),
        ("hjelp.blåbær.no", "hjelp.xn--blbr-roah.no"),
        ("example.com", "example.com"),
    ],
)
def test_domains_an_admin_may_add(typed, domain):
    assert parse_domain(typed, BASE_DOMAIN) == domain


@pytest.mark.parametrize(
    "typed, message",
    [
        ("", "Enter a domain"),
        ("localhost", "Use a full domain name"),
        ("192.168.1.10", "Use a domain name only"),
        ("support.example.com:8443", "Use a domain name only"),
        ("support.example.com/help", "Use a domain name only"),
        ("-bad.example.com", "Use a domain name only"),
        ("under_score.example.com", "Use a domain name only"),
        ("<script>.example.com", "Use a domain name only"),
        ("a" * 64 + ".example.com", "Use a domain name only"),
        (BASE_DOMAIN, "are ours already"),
        (f"acme.{BASE_DOMAIN}", "are ours already"),
    ],
)
def test_domains_an_admin_may_not_add(typed, message):
    with pytest.raises(BadDomain, match=message):
        parse_domain(typed, BASE_DOMAIN)


def test_every_reason_says_what_to_do():
    def said(reason: str, detail: str = "") -> str:
        domain = Domain(1, 1, "support.example.com", "failed", reason, detail)
        return describe(domain, "acme.help.example.com", "letsencrypt.org")

    assert said("no_record") == (
        "No CNAME or A record for support.example.com yet: "
        "create CNAME support.example.com → acme.help.example.com."
    )
    assert said("wrong_target", "x.example.net") == (
        "support.example.com points at x.example.net, not at acme.help.example.com: "
        "change its CNAME to acme.help.example.com."
    )
    assert said("caa", "ca.example.net") == (
        "A CAA record allows only ca.example.net to issue certificates for support.example.com; "
        'add `0 issue "letsencrypt.org"`.'
    )
    assert "allows no certificate authority" in said("caa")
    assert "we will try again" in said("lookup_error", "Timeout")
    assert said("") == ""


def test_the_dns_servers_setting():
    settings = Settings.from_env({"PORTAL_DNS_SERVERS": "127.0.0.1:5353, [::1]:53,10.0.0.2,::1"})
    assert settings.dns_server_list == [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("10.0.0.2", 53),
        ("::1", 53),
    ]
    assert Settings.from_env({}).dns_server_list == []  # the system's resolvers


@pytest.mark.parametrize(
    "environ, name",
    [
        ({"PORTAL_DNS_SERVERS": "ns1.example.com"}, "PORTAL_DNS_SERVERS"),
        ({"PORTAL_DNS_SERVERS": "127.0.0.1:dns"}, "PORTAL_DNS_SERVERS"),
        ({"PORTAL_DNS_SERVERS": "127.0.0.1:70000"}, "PORTAL_DNS_SERVERS"),
        ({"PORTAL_DNS_SERVERS": "[::1]x"}, "PORTAL_DNS_SERVERS"),
        ({"PORTAL_DOMAIN_RECHECK_SECONDS": "hourly"}, "PORTAL_DOMAIN_RECHECK_SECONDS"),
    ],
)
def test_bad_domain_settings_are_refused_naming_the_variable(environ, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(environ)
