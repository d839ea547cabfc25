"""/healthz and /readyz: on any host, 503 with the reason when the core's database is gone or
a check does not answer in time, and never hanging."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from portal.core.embedded.core import EmbeddedCore
from portal.health import Health, OutboxStats
from portal.metrics import Metrics
from tests.conftest import IN_PROCESS_URL, postgres_database
from tests.module_app import ModuleApp, module_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

REMOTE = ("203.0.113.7", 40000)  # a client that is not this machine


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ModuleApp]:
    async with module_app(tmp_path_factory.mktemp("health"), ready_timeout_s="0.5") as served:
        yield served


def client(served: ModuleApp, address: tuple[str, int] | None = None) -> httpx.AsyncClient:
    """A client on a host that is no tenant's; from loopback, or from `address`."""
    transport = served.server.transport
    if address is not None:
        assert isinstance(transport, httpx.ASGITransport)
        transport = httpx.ASGITransport(
            app=transport.app, raise_app_exceptions=False, client=address
        )
    return httpx.AsyncClient(
        transport=transport, base_url=IN_PROCESS_URL, headers={"host": "nobody.example"}
    )


async def test_healthz_answers_on_any_host(served: ModuleApp) -> None:
    async with client(served) as http:
        response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_readyz_reports_a_reachable_core_and_an_empty_outbox(served: ModuleApp) -> None:
    async with client(served) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["core"]["reachable"] is True
    assert isinstance(body["core"]["latency_ms"], float) and body["core"]["latency_ms"] >= 0
    assert "error" not in body["core"]
    assert body["outbox"] == {"depth": 0, "oldest_age_s": None}


async def test_readyz_is_503_while_the_core_database_is_gone(served: ModuleApp) -> None:
    core = served.server.core
    away = served.database_dir.with_name("database-away")
    await core.engine.dispose()  # its open connections would still read the moved file
    served.database_dir.rename(away)
    try:
        async with client(served) as http:
            operator = await http.get("/readyz")
        async with client(served, REMOTE) as http:
            public = await http.get("/readyz")
    finally:
        away.rename(served.database_dir)

    assert operator.status_code == 503
    assert operator.json()["ready"] is False
    assert operator.json()["core"]["reachable"] is False
    assert operator.json()["core"]["error"] == "OperationalError: unable to open database file"
    # Messages can name internal hosts: others learn only what kind of failure it was.
    assert public.status_code == 503
    assert public.json()["core"]["error"] == "OperationalError"

    async with client(served) as http:
        again = await http.get("/readyz")
    assert again.status_code == 200, again.text


@pytest.fixture
def health(served: ModuleApp) -> Iterator[Health]:
    """The app's readiness checks; the outbox probe a test sets is taken away afterwards."""
    checks: Health = served.server.service("health")
    yield checks
    checks.watch_outbox(None)


async def test_readyz_reports_the_outbox_probe(served: ModuleApp, health: Health) -> None:
    async def probe() -> OutboxStats:
        return OutboxStats(depth=3, oldest_age_s=12.5)

    health.watch_outbox(probe)
    async with client(served) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200  # queued writes are how the edge rides out an outage
    assert response.json()["outbox"] == {"depth": 3, "oldest_age_s": 12.5}


async def test_readyz_is_503_when_the_outbox_cannot_be_read(
    served: ModuleApp, health: Health
) -> None:
    async def broken() -> OutboxStats:
        raise RuntimeError("the outbox table is locked")

    health.watch_outbox(broken)
    async with client(served) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["core"]["reachable"] is True
    assert body["outbox"] == {
        "depth": None,
        "oldest_age_s": None,
        "error": "RuntimeError: the outbox table is locked",
    }


async def test_readyz_answers_503_when_a_check_never_answers(
    served: ModuleApp, health: Health
) -> None:
    async def silent() -> OutboxStats:
        await asyncio.Event().wait()  # never set
        raise AssertionError("unreachable")

    health.watch_outbox(silent)
    async with client(served) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["outbox"]["error"] == "timeout: no answer within 0.5 s"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


async def test_a_core_whose_database_never_answers_times_out(silent_port: int) -> None:
    core = EmbeddedCore(f"postgresql+asyncpg://portal@127.0.0.1:{silent_port}/x", migrate=False)
    metrics = Metrics()
    try:
        readiness = await Health(core, metrics, timeout_s=0.3).check()
    finally:
        await core.close()
    assert not readiness.ready
    assert readiness.as_json(detailed=True)["core"]["error"] == "timeout: no answer within 0.3 s"
    timed_out = {"operation": "ping", "outcome": "timeout"}
    count = metrics.registry.get_sample_value(
        "portal_core_request_duration_seconds_count", timed_out
    )
    assert count == 1


async def test_a_core_whose_database_refuses_connections_is_not_ready() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nobody listens once it is closed
    core = EmbeddedCore(f"postgresql+asyncpg://portal@127.0.0.1:{closed_port}/x", migrate=False)
    try:
        readiness = await Health(core, Metrics(), timeout_s=5).check()
    finally:
        await core.close()
    core_part = readiness.as_json(detailed=True)["core"]
    assert core_part["reachable"] is False
    assert core_part["error"].startswith("ConnectionRefusedError: ")


@pytest.mark.postgres
async def test_the_embedded_core_pings_postgresql() -> None:
    async with postgres_database() as url:
        core = EmbeddedCore(url, migrate=False)
        try:
            readiness = await Health(core, Metrics(), timeout_s=5).check()
        finally:
            await core.close()
    assert readiness.ready, readiness.as_json(detailed=True)
