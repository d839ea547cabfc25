"""Caddy (Debian's) in front of a real uvicorn, serving embed-examples/Caddyfile as shipped but
for its ports and `tls internal`: on-demand certificates for verified custom domains and tenant
hosts, none for a pending, failed or unknown name (the portal's /_tls/ask decides)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, service_missing, sqlite_database
from tests.domains.conftest import TENANT_HOST
from tests.processes import free_port

EXAMPLE = Path(__file__).parents[2] / "embed-examples" / "Caddyfile"


@pytest.fixture
def database_url(tmp_path) -> str:
    return sqlite_database(tmp_path)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, public_scheme="https")  # as behind Caddy in production


def edited(example: str, upstream: str, http_port: int, https_port: int) -> str:
    """The example for a test: our ports, Caddy's own CA, no admin endpoint, no trust store."""
    text = example
    for old, new in [
        ("ask http://127.0.0.1:8000/_tls/ask", f"ask http://{upstream}/_tls/ask"),
        ("reverse_proxy 127.0.0.1:8000", f"reverse_proxy {upstream}"),
        ("\ttls {\n\t\ton_demand", "\ttls internal {\n\t\ton_demand"),
        (
            "\n{\n",
            f"\n{{\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
            "\tadmin off\n\tskip_install_trust\n",
        ),
    ]:
        assert text.count(old) >= 1, f"the example no longer has {old!r}"
        text = text.replace(old, new, 1)
    return text


class Caddy:
    def __init__(self, folder: Path, upstream: str) -> None:
        binary = shutil.which("caddy")
        if binary is None:
            service_missing("caddy is not installed (Debian: apt-get install caddy)")
        assert binary is not None
        self.https_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "Caddyfile"
        config.write_text(edited(EXAMPLE.read_text(), upstream, free_port(), self.https_port))
        env = {
            **os.environ,
            "HOME": str(folder),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CONFIG_HOME": str(folder / "config"),
        }
        self.log = folder / "caddy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, "run", "--config", str(config), "--adapter", "caddyfile"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.root = folder / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
        deadline = time.monotonic() + 20
        while not (self.root.exists() and self._listening()):
            if self.process.poll() is not None:
                raise RuntimeError(f"caddy ended: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"caddy did not start: {self.log.read_text()}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.https_port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    async def get(self, host: str, path: str = "/kb/en/") -> tuple[dict, int, str]:
        """GET over TLS with `host` as SNI and Host, trusting only Caddy's CA: (certificate,
        status, body). ssl.SSLError when Caddy has no certificate for `host`."""
        context = ssl.create_default_context(cafile=str(self.root))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", self.https_port, ssl=context, server_hostname=host
            ),
            20,
        )
        try:
            certificate = writer.get_extra_info("peercert")
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            answer = await asyncio.wait_for(reader.read(), 20)
        finally:
            writer.close()
        head, _, body = answer.decode("utf-8", "replace").partition("\r\n\r\n")
        return certificate, int(head.split()[1]), body


@pytest.fixture
def caddy(live_server, tmp_path) -> Iterator[Caddy]:
    proxy = Caddy(tmp_path / "caddy", live_server.url.removeprefix("http://"))
    yield proxy
    proxy.stop()


def names_in(certificate: dict) -> set[str]:
    return {value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"}


async def test_a_verified_domain_gets_a_certificate_and_the_help_center(live_server, caddy):
    acme = await live_server.tenant()
    await live_server.core.tenants.add_domain(acme.id, "support.example.test", verified=False)
    await live_server.core.tenants.set_domain_status(acme.id, "support.example.test", "verified")
    certificate, status, body = await caddy.get("support.example.test")
    assert "support.example.test" in names_in(certificate)
    assert status == 200 and "Acme" in body
    # Canonical links follow the domain the visitor is on.
    assert 'rel="canonical" href="https://support.example.test/kb/en/"' in body

    # The tenant's own host, which a wildcard certificate would otherwise cover, gets one too.
    certificate, status, body = await caddy.get(TENANT_HOST)
    assert TENANT_HOST in names_in(certificate) and status == 200 and "Acme" in body


@pytest.mark.parametrize("state", ["unregistered", "pending", "failed", "no such tenant"])
async def test_a_name_that_is_not_verified_gets_no_certificate(live_server, caddy, state):
    acme = await live_server.tenant()
    name = "support.example.test"
    if state == "no such tenant":
        name = f"nobody.{BASE_DOMAIN}"
    if state in ("pending", "failed"):
        await live_server.core.tenants.add_domain(acme.id, name, verified=False)
    if state == "failed":  # verified once, then it stopped pointing at us
        await live_server.core.tenants.set_domain_status(acme.id, name, "verified")
        await live_server.core.tenants.set_domain_status(acme.id, name, "failed", "no_record")
    with pytest.raises(ssl.SSLError):
        await caddy.get(name)
    # The proxy itself is fine: a verified name in the same moment gets its certificate.
    assert (await caddy.get(TENANT_HOST))[1] == 200


async def test_a_domain_that_fails_stops_being_served_even_with_its_certificate(live_server, caddy):
    acme = await live_server.tenant()
    name = "support.example.test"
    await live_server.core.tenants.add_domain(acme.id, name, verified=False)
    await live_server.core.tenants.set_domain_status(acme.id, name, "verified")
    assert (await caddy.get(name))[1] == 200
    await live_server.core.tenants.set_domain_status(acme.id, name, "failed", "no_record")
    # Caddy keeps the certificate it has; the portal no longer serves the name (every process
    # hears `tenant.changed`): its unknown-host page, which names no tenant.
    deadline = asyncio.get_running_loop().time() + 10
    while (answer := await caddy.get(name))[1] != 404:
        assert asyncio.get_running_loop().time() < deadline, "the failed domain is still served"
        await asyncio.sleep(0.05)
    assert "Acme" not in answer[2]
