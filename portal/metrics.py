"""Prometheus metrics at `/metrics`: one registry per app, and who may read it.

`Metrics` owns a `CollectorRegistry` and the metric objects the rest of the service updates, so
two apps in one process (tests, benchmarks) never share a count. Nothing counts requests: the
reverse proxy (or uvicorn's access log) does that, and a middleware here would add its cost to
every page the benchmarks compare with a bare Starlette app.

Who updates what:
- `core_latency`: every call on a remote core (operation, outcome), and readiness pings;
- `webhook_failures`: the edge's webhook receiver, by reason (signature, stale, replayed, ...);
- `events_received`: the edge, per channel the core's events came through (webhook, feed);
- `outbox_depth`, `outbox_oldest_age`: set at each scrape from the outbox's probe
  (`portal.health.Health.outbox_stats`).

`/metrics` answers loopback clients when `PORTAL_METRICS_KEY` is empty; once it is set, only
requests with `Authorization: Bearer KEY` (from any address, loopback too). The client address
is the one uvicorn's proxy headers give: a request relayed by a trusted reverse proxy counts as
its real client, not as loopback.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal.services import services

# From an embedded core's ~1 ms to a remote core timing out.
CORE_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The registry of one app and the metrics others update (see the module docstring)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # Memory, CPU, open files and the collector's passes: read only when scraped.
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        self.outbox_depth = Gauge(
            "portal_outbox_depth",
            "Writes stored on the edge, not yet accepted by the core.",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "portal_outbox_oldest_age_seconds",
            "Age of the oldest write waiting in the outbox (0 when it is empty).",
            registry=registry,
        )
        self.core_latency = Histogram(
            "portal_core_request_duration_seconds",
            "Time of calls on the core, by operation and outcome (ok, error, timeout).",
            ["operation", "outcome"],
            buckets=CORE_LATENCY_BUCKETS,
            registry=registry,
        )
        self.webhook_failures = Counter(
            "portal_webhook_failures",
            "Webhooks from the core that the edge refused or could not handle, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_received = Counter(
            "portal_events_received",
            "Events from the core, by the channel they came through (webhook, feed).",
            ["channel"],
            registry=registry,
        )

    @contextmanager
    def timed_core_call(self, operation: str) -> Iterator[None]:
        """Observe the block's time in `core_latency`: outcome ok, timeout, cancelled or error.

        (A client's own timeout exceptions, such as httpx's, are errors unless mapped to
        TimeoutError.)"""
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except TimeoutError:
            outcome = "timeout"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.core_latency.labels(operation, outcome).observe(time.perf_counter() - started)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format `accept` asks for (Prometheus text, or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def problem(status: int, title: str, detail: str) -> JSONResponse:
    """An `application/problem+json` answer (RFC 9457)."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def is_loopback(request: Request) -> bool:
    """Whether the client (as the trusted proxy headers name it) is this machine."""
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an address (a Unix socket's peer, a test client's name)
        return False


def is_operator(request: Request) -> bool:
    """Whether the request may read operators' data: with the metrics key when one is set,
    else from loopback."""
    key = services(request).settings.metrics_key
    if not key:
        return is_loopback(request)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


async def metrics(request: Request) -> Response:
    """The app's metrics, with the outbox gauges read now."""
    if not is_operator(request):
        if services(request).settings.metrics_key:
            detail = "Send the metrics key as `Authorization: Bearer KEY` (PORTAL_METRICS_KEY)."
        else:
            detail = "Metrics are served to loopback clients only; set PORTAL_METRICS_KEY to "
            detail += "scrape from elsewhere with `Authorization: Bearer KEY`."
        return problem(403, "Forbidden", detail)
    app = services(request)
    stats = await app.health.outbox_stats()
    if stats is not None:  # None: the probe failed; the gauges keep their last values
        app.metrics.outbox_depth.set(stats.depth)
        app.metrics.outbox_oldest_age.set(stats.oldest_age_s or 0.0)
    body, content_type = app.metrics.exposition(request.headers.get("accept", ""))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


routes = [Route("/metrics", metrics, name="metrics")]
