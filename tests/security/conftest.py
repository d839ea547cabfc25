"""Attacks against a real `portal serve` process with two tenants and a real SMTP sink.

The server is a subprocess started from the `portal` command line, as an operator runs it, so
what is tested includes uvicorn's own settings (frame limits, timeouts, trusted proxies). It
trusts `X-Forwarded-For` from loopback (uvicorn's default `forwarded_allow_ips`), so a test can
speak as many client addresses: `served.client("acme", ip="203.0.113.7")`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.core.contract import Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.security import hash_password
from tests.conftest import BASE_DOMAIN, Inbox, smtp_server
from tests.processes import free_port

SECRET = "security-tests-secret-key-0123456789-abcdefghij"
ADMIN_PASSWORD = "correct horse battery staple"
SLUGS = ("acme", "globex")
_addresses = itertools.count(1)


def fresh_ip() -> str:
    """A client address no other test used, so per-address limits start from zero."""
    n = next(_addresses)
    return f"198.18.{n // 250}.{n % 250 + 1}"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Served:
    """A `portal serve` subprocess, its tenants, its data folder and the mail it sent."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    data: Path
    database_url: str
    inbox: Inbox
    log: Path
    tenants: dict[str, Tenant] = field(default_factory=dict)

    def host(self, slug: str = "acme") -> str:
        return f"{slug}.{BASE_DOMAIN}"

    def client(
        self, slug: str = "acme", *, ip: str | None = None, **kwargs: Any
    ) -> httpx.AsyncClient:
        """An HTTP client for a tenant's host, speaking as client address `ip` (a fresh one)."""
        headers = {"host": self.host(slug), "x-forwarded-for": ip or fresh_ip()}
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(base_url=self.url, headers=headers, **kwargs)

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://") + path

    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def core(self) -> EmbeddedCore:
        """A second connection to the server's database, for arranging and checking rows."""
        core = EmbeddedCore(self.database_url)
        await core.start()
        return core


async def _seed(database_url: str) -> dict[str, Tenant]:
    core = EmbeddedCore(database_url)
    await core.start()
    try:
        tenants = {}
        password = hash_password(ADMIN_PASSWORD)
        for slug in SLUGS:
            tenant = await core.tenants.create_tenant(slug, slug.title())
            await core.tenants.create_agent(
                tenant.id, f"admin@{slug}.test", "Admin", password, "admin"
            )
            await core.tenants.create_agent(
                tenant.id, f"agent@{slug}.test", "Agent", password, "agent"
            )
            tenants[slug] = tenant
        return tenants
    finally:
        await core.close()


HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 2


def start_portal(data: Path, inbox: Inbox, **env: str) -> Served:
    """Seed two tenants in `data`, then run `portal serve` on it until stopped."""
    data.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite+aiosqlite:///{data / 'portal.db'}"
    tenants = asyncio.run(_seed(database_url))
    port = free_port()
    environ = {
        **os.environ,
        "PORTAL_DATA_DIR": str(data),
        "PORTAL_PORT": str(port),
        "PORTAL_BASE_DOMAIN": BASE_DOMAIN,
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_SMTP_HOST": "127.0.0.1",
        "PORTAL_SMTP_PORT": str(inbox.port),
        "PORTAL_MAIL_FROM": "help@portal.test",
        # The slow-headers test waits this out: short, so it costs seconds, not ten.
        "PORTAL_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "PORTAL_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        **env,
    }
    log = data / "server.log"
    output = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "serve"],
        env=environ,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    output.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"portal serve exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"portal serve did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Served(url, port, process, data, database_url, inbox, log, tenants)


def stop_portal(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()


@pytest.fixture(scope="module")
def module_smtp() -> Iterator[Inbox]:
    """A real SMTP server for the whole module."""
    yield from smtp_server()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, module_smtp: Inbox) -> Iterator[Served]:
    """One `portal serve` for a test module (tests use fresh client addresses and emails)."""
    portal = start_portal(tmp_path_factory.mktemp("served"), module_smtp)
    try:
        yield portal
    finally:
        stop_portal(portal)


@pytest.fixture
async def served_core(served: Served) -> AsyncIterator[EmbeddedCore]:
    core = await served.core()
    yield core
    await core.close()
