"""Real DNS for the domain checks: dnsmasq on a loopback port, serving records made for a test.

`DnsServer` runs `dnsmasq` (Debian's `dnsmasq-base`) in the foreground with no configuration
but its command line: names under `.test` are answered from the records given (and are NXDOMAIN
otherwise, never forwarded), CAA records are raw `--dns-rr=NAME,257,HEX` records. `restart`
swaps the records on the same port, which is how a test makes a domain stop pointing at us.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.query
import dns.rdata
import pytest

from tests.conftest import BASE_DOMAIN, service_missing

TENANT_HOST = f"acme.{BASE_DOMAIN}"
OTHER_ADDRESS = "192.0.2.10"  # TEST-NET-1: an address that is not ours


def caa_hex(text: str) -> str:
    """A CAA record's wire form (`0 issue "ca.example.net"`), as dnsmasq's `--dns-rr` wants."""
    return dns.rdata.from_text("IN", "CAA", text).to_digestable().hex()


@dataclass
class Zone:
    """Records for dnsmasq: host records (name -> addresses), CNAMEs and CAA records."""

    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cnames: dict[str, str] = field(default_factory=dict)
    caa: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def arguments(self) -> list[str]:
        args = [f"--host-record={name},{','.join(addrs)}" for name, addrs in self.hosts.items()]
        args += [f"--cname={name},{target}" for name, target in self.cnames.items()]
        args += [
            f"--dns-rr={name},257,{caa_hex(record)}"
            for name, records in self.caa.items()
            for record in records
        ]
        return args


def our_zone() -> Zone:
    """The base domain and the tenant hosts, ours: every test's zone starts from these."""
    return Zone(
        hosts={
            BASE_DOMAIN: ("127.0.0.1", "::1"),
            TENANT_HOST: ("127.0.0.1", "::1"),
            f"globex.{BASE_DOMAIN}": ("127.0.0.1", "::1"),
            "elsewhere.test": (OTHER_ADDRESS,),
        }
    )


def standard_zone() -> Zone:
    """A record for each outcome of a check."""
    zone = our_zone()
    zone.cnames.update(
        {
            "support.example.test": TENANT_HOST,  # good
            "hop.example.test": "mid.example.test",  # good, through another CNAME
            "mid.example.test": TENANT_HOST,
            "wrong.example.test": "elsewhere.test",  # wrong target
            "help.strict.test": TENANT_HOST,  # good, but its parent's CAA forbids the issuer
        }
    )
    zone.hosts.update(
        {
            "apex.example.test": ("127.0.0.1", "::1"),  # no CNAME: our addresses
            "half.example.test": ("127.0.0.1",),  # only IPv4, still ours
            "badapex.example.test": (OTHER_ADDRESS,),  # no CNAME: not our addresses
            "caa.example.test": ("127.0.0.1",),
            "le.example.test": ("127.0.0.1",),
            "crit.example.test": ("127.0.0.1",),
        }
    )
    zone.caa.update(
        {
            "caa.example.test": ('0 issue "ca.example.net"',),
            "le.example.test": ('0 issue "letsencrypt.org; validationmethods=http-01"',),
            "strict.test": ('0 issue "ca.example.net"', '0 issue "pki.example.org"'),
            "crit.example.test": ('128 tbs "unknown"',),
        }
    )
    return zone


def dnsmasq_path() -> str:
    found = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK) else None
    )
    if found is None:
        service_missing("dnsmasq is not installed (Debian: apt-get install dnsmasq-base)")
    assert found is not None
    return found


def free_port() -> int:
    """A loopback port free for both UDP and TCP: dnsmasq listens on both, and a port free for
    UDP alone may be another test's HTTP server's."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class PortTaken(RuntimeError):
    """dnsmasq found its port taken."""


class DnsServer:
    """dnsmasq on 127.0.0.1:`port`, answering `zone` with a TTL of 0 (nothing kept anywhere)."""

    def __init__(self, zone: Zone) -> None:
        self.binary = dnsmasq_path()
        self.process: subprocess.Popen[bytes] | None = None
        for attempt in range(5):  # another process may take the port between choice and bind
            self.port = free_port()
            try:
                self.start(zone)
                return
            except PortTaken:
                if attempt == 4:
                    raise

    @property
    def address(self) -> str:
        """What PORTAL_DNS_SERVERS takes."""
        return f"127.0.0.1:{self.port}"

    def start(self, zone: Zone) -> None:
        command = [
            self.binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--local=/test/",  # every name under .test is ours to answer: NXDOMAIN if unknown
            "--local-ttl=0",
            *(["--user=root"] if os.geteuid() == 0 else []),  # no nobody in some containers
            *zone.arguments(),
        ]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                self.stop()
                if "Address already in use" in error:
                    raise PortTaken(error)
                raise RuntimeError(f"dnsmasq did not start: {error}")
            if time.monotonic() > deadline:
                raise RuntimeError("dnsmasq did not answer within 10 s")
            time.sleep(0.02)

    def _answers(self) -> bool:
        try:
            dns.query.udp(
                dns.message.make_query(BASE_DOMAIN, "A"), "127.0.0.1", timeout=0.2, port=self.port
            )
        except (OSError, dns.exception.Timeout):
            return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self, zone: Zone) -> None:
        """Serve other records on the same port (what a DNS change at the provider does)."""
        self.stop()
        self.start(zone)


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    """dnsmasq serving `standard_zone()` for a module's tests."""
    server = DnsServer(standard_zone())
    yield server
    server.stop()


@pytest.fixture
def own_dns_server() -> Iterator[DnsServer]:
    """dnsmasq of this test alone (it may `restart` it with other records)."""
    server = DnsServer(our_zone())
    yield server
    server.stop()
