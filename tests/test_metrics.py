"""/metrics: Prometheus text with the service's metrics, one registry per app, answered to
loopback clients, or to holders of PORTAL_METRICS_KEY once it is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from portal.health import Health, OutboxStats
from portal.metrics import Metrics
from tests.conftest import IN_PROCESS_URL
from tests.module_app import ModuleApp, module_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

REMOTE = ("203.0.113.7", 40000)  # a client that is not this machine
KEY = "metrics-key-0123456789-abcdefghijklmnop"
SERVICE_METRICS = {
    "portal_outbox_depth": "gauge",
    "portal_outbox_oldest_age_seconds": "gauge",
    "portal_core_request_duration_seconds": "histogram",
    "portal_webhook_failures": "counter",
    "portal_events_received": "counter",
    "process_resident_memory_bytes": "gauge",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ModuleApp]:
    """An app without a metrics key: /metrics answers loopback clients only."""
    async with module_app(tmp_path_factory.mktemp("metrics")) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def keyed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ModuleApp]:
    """An app with PORTAL_METRICS_KEY set: /metrics answers the key's holders only."""
    async with module_app(tmp_path_factory.mktemp("metrics-keyed"), metrics_key=KEY) as served:
        yield served


def client(
    served: ModuleApp, address: tuple[str, int] | None = None, **headers: str
) -> httpx.AsyncClient:
    """A client on a host that is no tenant's; from loopback, or from `address`."""
    transport = served.server.transport
    if address is not None:
        assert isinstance(transport, httpx.ASGITransport)
        transport = httpx.ASGITransport(
            app=transport.app, raise_app_exceptions=False, client=address
        )
    return httpx.AsyncClient(
        transport=transport,
        base_url=IN_PROCESS_URL,
        headers={"host": "nobody.example", **headers},
    )


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    """Every sample of /metrics by name and labels, e.g. `x_count{operation="ping",...}`."""
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_are_prometheus_text_with_the_service_metrics(served: ModuleApp) -> None:
    async with client(served) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert SERVICE_METRICS.items() <= families.items(), families


@pytest.fixture
def health(served: ModuleApp) -> Iterator[Health]:
    checks: Health = served.server.service("health")
    yield checks
    checks.watch_outbox(None)


async def test_outbox_gauges_are_read_from_the_probe_at_scrape_time(
    served: ModuleApp, health: Health
) -> None:
    depth = 0

    async def probe() -> OutboxStats:
        return OutboxStats(depth=depth, oldest_age_s=42.5 if depth else None)

    health.watch_outbox(probe)
    async with client(served) as http:
        depth = 7
        busy = await scrape(http)
        depth = 0
        drained = await scrape(http)
    assert busy["portal_outbox_depth[]"] == 7
    assert busy["portal_outbox_oldest_age_seconds[]"] == 42.5
    assert drained["portal_outbox_depth[]"] == 0
    assert drained["portal_outbox_oldest_age_seconds[]"] == 0


async def test_readiness_pings_are_timed(served: ModuleApp) -> None:
    ping = "portal_core_request_duration_seconds_count[('operation', 'ping'), ('outcome', 'ok')]"
    async with client(served) as http:
        before = (await scrape(http)).get(ping, 0)
        assert (await http.get("/readyz")).status_code == 200
        after = (await scrape(http))[ping]
    assert after == before + 1


async def test_core_calls_are_timed_by_outcome() -> None:
    metrics = Metrics()
    with metrics.timed_core_call("get_ticket"):
        pass
    with pytest.raises(TimeoutError), metrics.timed_core_call("get_ticket"):
        raise TimeoutError
    with pytest.raises(ConnectionError), metrics.timed_core_call("create_ticket"):
        raise ConnectionError
    with pytest.raises(asyncio.CancelledError), metrics.timed_core_call("create_ticket"):
        raise asyncio.CancelledError

    def count(operation: str, outcome: str) -> float | None:
        labels = {"operation": operation, "outcome": outcome}
        return metrics.registry.get_sample_value(
            "portal_core_request_duration_seconds_count", labels
        )

    assert count("get_ticket", "ok") == 1
    assert count("get_ticket", "timeout") == 1
    assert count("create_ticket", "error") == 1
    assert count("create_ticket", "cancelled") == 1
    assert count("get_ticket", "error") is None


async def test_two_apps_in_one_process_count_apart() -> None:
    first, second = Metrics(), Metrics()  # one shared (global) registry would refuse this
    first.events_received.labels("webhook").inc()
    first.webhook_failures.labels("signature").inc(2)
    assert (
        first.registry.get_sample_value("portal_events_received_total", {"channel": "webhook"}) == 1
    )
    assert (
        first.registry.get_sample_value("portal_webhook_failures_total", {"reason": "signature"})
        == 2
    )
    assert (
        second.registry.get_sample_value("portal_events_received_total", {"channel": "webhook"})
        is None
    )


def assert_refused(response: httpx.Response, says: str) -> None:
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 403 and problem["title"] == "Forbidden"
    assert says in problem["detail"]
    assert "portal_" not in response.text


async def test_metrics_are_refused_to_other_machines_without_a_key(served: ModuleApp) -> None:
    async with client(served, REMOTE) as http:
        direct = await http.get("/metrics")
        with_a_key = await http.get("/metrics", headers={"authorization": f"Bearer {KEY}"})
    # Relayed by a trusted proxy on this machine, the request is the proxy's client's.
    async with client(served, **{"x-forwarded-for": "198.51.100.4"}) as http:
        proxied = await http.get("/metrics")
    assert_refused(direct, "loopback clients only")
    assert_refused(with_a_key, "PORTAL_METRICS_KEY")  # no key is set: none is accepted
    assert_refused(proxied, "loopback clients only")


async def test_with_a_key_set_metrics_need_the_key_from_anywhere(keyed: ModuleApp) -> None:
    async with client(keyed, REMOTE, authorization=f"Bearer {KEY}") as http:
        scraped = await scrape(http)
    assert "portal_outbox_depth[]" in scraped
    async with client(keyed, REMOTE, authorization=f"Bearer {KEY[:-1]}x") as http:
        assert_refused(await http.get("/metrics"), "Authorization: Bearer")
    async with client(keyed) as http:  # loopback, without the key
        assert_refused(await http.get("/metrics"), "Authorization: Bearer")
