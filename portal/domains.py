"""Custom domains: what an admin may register, the DNS check that verifies one, and re-checks.

A tenant's custom domain (`support.example.com`) is served only while DNS shows it is ours:
its CNAME chain reaches the tenant's host `{slug}.{base_domain}`, or, for a name without a
CNAME (an apex name cannot have one), its A/AAAA records are addresses of the base domain (or of
the tenant's host). A CNAME to another tenant's host is not ours: it reaches our addresses, but
its owner chose that tenant. A CAA record that lets only other certificate authorities issue for
the name fails it too: the on-demand certificate (`PORTAL_ACME_ISSUER`, Let's Encrypt by
default) could never be issued, and the domain would answer with a TLS error.

Checks run when the admin adds a domain or asks for one, and periodically (`recheck_forever`,
started by the app's lifespan): a verified domain that stops pointing at us is marked failed and
stops being served at once, in every process (`tenant.changed`).

Lookups use dnspython's asyncio resolver against `PORTAL_DNS_SERVERS` (empty: the system's), with
no cache of its own, so a re-check sees what DNS says now (up to the servers' TTLs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from portal.core.contract import HelpdeskCore, NotFound
from portal.core.contract.tenants import Domain, DomainStatus
from portal.i18n import gettext

if TYPE_CHECKING:
    from portal.settings import Settings
    from portal.tenancy import TenantResolver

log = logging.getLogger(__name__)

MAX_DOMAINS_PER_TENANT = 20  # each one is re-checked forever: a tenant may not add thousands
MAX_CNAME_HOPS = 8
RECHECK_BATCH = 50
CHECKS_AT_ONCE = 8

_CAA_TAGS_WE_KNOW = (b"issue", b"issuewild", b"iodef")


class BadDomain(ValueError):
    """A domain an admin may not register; the message (translated) says why."""


def parse_domain(text: str, base_domain: str) -> str:
    """The domain an admin typed, lower-case, as DNS spells it (IDNA); else BadDomain."""
    name = text.strip().lower()
    for scheme in ("https://", "http://"):  # pasted from the address bar: take the host
        if name.startswith(scheme):
            name = name[len(scheme) :].rstrip("/")
    name = name.rstrip(".")
    if not name:
        raise BadDomain(gettext("Enter a domain, such as support.example.com."))
    only_a_name = BadDomain(
        gettext(
            "Use a domain name only, such as support.example.com: letters, digits, "
            "hyphens and dots, no address, port or path."
        )
    )
    try:
        name = name.encode("idna").decode("ascii")  # (IDNA 2003, as browsers' address bars)
    except UnicodeError:
        raise only_a_name from None
    labels = name.split(".")
    if (
        len(name) > 253
        or any(not _label_ok(label) for label in labels)
        or labels[-1].isdigit()  # an IP address, or a name no registry hands out
    ):
        raise only_a_name
    if len(labels) < 2:
        raise BadDomain(gettext("Use a full domain name, such as support.example.com."))
    base = base_domain.lower().strip(".")
    if name == base or name.endswith("." + base):
        raise BadDomain(gettext("Names under %(base)s are ours already.") % {"base": base})
    return name


def _label_ok(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
    )


def tenant_host(slug: str, base_domain: str) -> str:
    """The tenant's own host, which a custom domain's CNAME names."""
    return f"{slug}.{base_domain.lower().strip('.')}"


@dataclass(frozen=True)
class CheckResult:
    """A check's outcome: `ok`, or a reason (contract `DOMAIN_REASONS`) with what DNS said."""

    ok: bool
    reason: str = ""
    detail: str = ""


def next_status(current: DomainStatus, result: CheckResult) -> DomainStatus:
    """The status a check's result leads to.

    A lookup that got no answer changes nothing: our resolver's hiccup must not take a working
    domain down. A domain never verified whose record is simply missing stays pending (its admin
    is creating it); wrong records, and any failure of a domain that was verified, are failed.
    """
    if result.ok:
        return "verified"
    if result.reason == "lookup_error":
        return current
    if result.reason == "no_record" and current == "pending":
        return "pending"
    return "failed"


def describe(domain: Domain, target: str, issuer: str) -> str:
    """What the admin reads about a domain's last check, translated; "" when nothing is wrong.

    Each message says what to do: the record to create, or the one to change.
    """
    values = {"domain": domain.domain, "target": target, "found": domain.detail, "issuer": issuer}
    if domain.reason == "no_record":
        return (
            gettext(
                "No CNAME or A record for %(domain)s yet: create CNAME %(domain)s → %(target)s."
            )
            % values
        )
    if domain.reason == "wrong_target":
        return (
            gettext(
                "%(domain)s points at %(found)s, not at %(target)s: change its CNAME to %(target)s."
            )
            % values
        )
    if domain.reason == "caa" and domain.detail:
        return (
            gettext(
                "A CAA record allows only %(found)s to issue certificates for %(domain)s; add "
                '`0 issue "%(issuer)s"`.'
            )
            % values
        )
    if domain.reason == "caa":
        return (
            gettext(
                "A CAA record allows no certificate authority to issue certificates for "
                '%(domain)s; add `0 issue "%(issuer)s"`.'
            )
            % values
        )
    if domain.reason == "lookup_error":
        return gettext("DNS did not answer for %(domain)s (%(found)s); we will try again.") % values
    return ""


class DomainChecker:
    """Checks custom domains against DNS (see the module's docstring for what counts)."""

    def __init__(
        self,
        base_domain: str,
        nameservers: list[tuple[str, int]],
        issuer: str,
        *,
        lifetime: float = 5.0,
    ) -> None:
        self.base_domain = base_domain.lower().strip(".")
        self.issuer = issuer.lower().strip()
        try:
            resolver = dns.asyncresolver.Resolver(configure=not nameservers)
        except dns.resolver.NoResolverConfiguration:
            # No /etc/resolv.conf: every check is a lookup error (and says so), not a crash.
            resolver = dns.asyncresolver.Resolver(configure=False)
        if nameservers:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
        resolver.lifetime = lifetime
        resolver.cache = None  # a re-check must see what DNS says now
        self.resolver = resolver

    async def check(self, domain: str, slug: str) -> CheckResult:
        try:
            return await self._check(domain.lower(), tenant_host(slug, self.base_domain))
        except dns.exception.DNSException as exc:
            # Timeouts, SERVFAIL, refused: nothing learned about the domain itself.
            return CheckResult(False, "lookup_error", type(exc).__name__)

    async def _check(self, domain: str, target: str) -> CheckResult:
        chain = await self._cname_chain(domain)
        if chain and target not in chain:
            # A CNAME must name this tenant's host: one to another tenant's host reaches our
            # addresses too, but says its owner chose that tenant.
            return CheckResult(False, "wrong_target", chain[-1])
        if not chain:
            addresses = await self._addresses(domain)
            if not addresses:
                return CheckResult(False, "no_record")
            ours = await self._addresses(self.base_domain) | await self._addresses(target)
            if not addresses <= ours:
                return CheckResult(False, "wrong_target", ", ".join(sorted(addresses)))
        if self.issuer:
            refused = await self._caa_refuses(domain)
            if refused is not None:
                return CheckResult(False, "caa", refused)
        return CheckResult(True)

    async def _answer(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The records of `name` (CNAMEs followed for other types); [] for none or NXDOMAIN."""
        try:
            answer = await self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        return list(answer.rrset) if answer.rrset is not None else []

    async def _cname_chain(self, domain: str) -> list[str]:
        """The names `domain`'s CNAMEs lead to, in order (empty: it has no CNAME)."""
        chain: list[str] = []
        name = domain
        for _hop in range(MAX_CNAME_HOPS):
            records = await self._answer(name, "CNAME")
            if not records:
                break
            name = records[0].target.to_text(omit_final_dot=True).lower()  # type: ignore[attr-defined]
            if name in chain:
                break  # a loop: what we have is all there is
            chain.append(name)
        return chain

    async def _addresses(self, name: str) -> set[str]:
        found = set()
        for rdtype in ("A", "AAAA"):
            for record in await self._answer(name, rdtype):
                found.add(str(ipaddress.ip_address(record.address)))  # type: ignore[attr-defined]
        return found

    async def _caa_refuses(self, domain: str) -> str | None:
        """None when the issuer may issue for `domain`; else the issuers its CAA allows ("" for
        none) or the critical tag nobody understands (RFC 8659: the closest name with a CAA
        record set, climbing towards the root, decides; only `issue` applies to a name that is
        no wildcard, and without an `issue` record any issuer may)."""
        name = dns.name.from_text(domain)
        records: list[dns.rdata.Rdata] = []
        while len(name) > 1 and not records:  # (the root, ".", has length 1)
            records = await self._answer(name.to_text(), "CAA")
            name = name.parent()
        issuers = []
        for record in records:
            tag, value = record.tag.lower(), record.value.decode("ascii", "replace")  # type: ignore[attr-defined]
            if record.flags & 128 and tag not in _CAA_TAGS_WE_KNOW:  # type: ignore[attr-defined]
                return tag.decode("ascii", "replace")
            if tag == b"issue":
                issuers.append(value.split(";", 1)[0].strip().lower())
        if not issuers or self.issuer in issuers:
            return None
        return ", ".join(sorted({issuer for issuer in issuers if issuer}))


@lru_cache(maxsize=8)
def checker_for(settings: Settings) -> DomainChecker:
    """The checker of an app's settings (one resolver each, made once)."""
    return DomainChecker(settings.base_domain, settings.dns_server_list, settings.acme_issuer)


async def check_domain(
    core: HelpdeskCore, checker: DomainChecker, domain: Domain, slug: str
) -> Domain:
    """Check one domain now and record what was found; returns it as stored."""
    result = await checker.check(domain.domain, slug)
    return await core.tenants.set_domain_status(
        domain.tenant_id,
        domain.domain,
        next_status(domain.status, result),
        result.reason,
        result.detail,
    )


async def add_and_check(
    core: HelpdeskCore, checker: DomainChecker, tenant_id: int, slug: str, domain: str
) -> Domain:
    """Register an admin's domain (pending) and check it at once. Conflict when taken;
    BadDomain when the tenant has as many as it may."""
    if len(await core.tenants.list_domains(tenant_id)) >= MAX_DOMAINS_PER_TENANT:
        raise BadDomain(
            gettext("A help center may have at most %(count)d domains; remove one first.")
            % {"count": MAX_DOMAINS_PER_TENANT}
        )
    added = await core.tenants.add_domain(tenant_id, domain, verified=False)
    return await check_domain(core, checker, added, slug)


async def recheck_due(
    core: HelpdeskCore, checker: DomainChecker, interval: timedelta, resolver: TenantResolver
) -> int:
    """Re-check the domains last checked more than `interval` ago; how many were checked.

    The core hands each due domain to one process only (`claim_domains_to_check`), so several
    processes share the work instead of repeating it.
    """
    claimed = await core.tenants.claim_domains_to_check(datetime.now(UTC) - interval, RECHECK_BATCH)
    if not claimed:
        return 0
    slugs = {tenant.id: tenant.slug for tenant in await core.tenants.list_tenants()}
    gate = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def one(domain: Domain) -> None:
        if domain.tenant_id not in slugs:
            return  # its tenant went meanwhile (and the domain with it)
        async with gate:
            try:
                after = await check_domain(core, checker, domain, slugs[domain.tenant_id])
            except NotFound:
                return  # removed while it was checked
        if after.status != domain.status:
            log.info("domain %s: %s -> %s", domain.domain, domain.status, after.status)
            resolver.forget()  # this process at once; the others on `tenant.changed`

    await asyncio.gather(*(one(domain) for domain in claimed))
    return len(claimed)


async def recheck_forever(core: HelpdeskCore, settings: Settings, resolver: TenantResolver) -> None:
    """The lifespan's task: re-check due domains every minute (or every interval, if shorter)."""
    seconds = int(settings.domain_recheck_seconds)
    if seconds <= 0:
        return  # switched off
    interval = timedelta(seconds=seconds)
    checker = checker_for(settings)
    while True:
        try:
            while await recheck_due(core, checker, interval, resolver) == RECHECK_BATCH:
                pass  # a full batch: more may be due
        except Exception:  # a bad moment of the database: try again next time
            log.exception("re-checking custom domains failed")
        await asyncio.sleep(min(seconds, 60))
