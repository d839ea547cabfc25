"""Liveness and readiness: `/healthz` says the process answers, `/readyz` whether it can serve.

`/healthz` is 200 `{"status": "ok"}` and does no I/O: when it fails, the process is stuck and
should be restarted. `/readyz` is 200 when the core answers a cheap call (`HelpdeskCore.ping`)
and the outbox can be read, each within PORTAL_READY_TIMEOUT_S, and 503 otherwise:

    {"ready": true,
     "core": {"reachable": true, "latency_ms": 0.4},
     "outbox": {"depth": 0, "oldest_age_s": null}}

A check that fails adds `"error"` to its part. Operators (`portal.metrics.is_operator`: loopback,
or the metrics key when one is set) read the error's message; anyone else its kind only
(`timeout`, `OperationalError`), because messages name internal hosts and ports.

The outbox registers its probe with `Health.watch_outbox`; until one does, the outbox is
reported empty (depth 0, `oldest_age_s` null), the shape monitoring will keep seeing. A deep
outbox leaves the edge ready: queueing writes is how it keeps serving while the core is away,
so alert on `portal_outbox_oldest_age_seconds` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal.core.contract import HelpdeskCore
from portal.metrics import Metrics, is_operator
from portal.services import services

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How far behind the outbox is."""

    depth: int  # writes stored, not yet accepted by the core
    oldest_age_s: float | None  # age of the oldest of them; None when there are none


OutboxProbe = Callable[[], Awaitable[OutboxStats]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One check's result: how long it took and, when it failed, why."""

    ok: bool
    latency_ms: float
    kind: str = ""  # of the failure: `timeout` or the exception's class
    message: str = ""

    def error(self, detailed: bool) -> str:
        return f"{self.kind}: {self.message}" if detailed and self.message else self.kind


@dataclass(frozen=True, slots=True)
class Readiness:
    """What `/readyz` reports."""

    core: Outcome
    outbox: Outcome
    outbox_stats: OutboxStats | None  # None when the probe failed

    @property
    def ready(self) -> bool:
        return self.core.ok and self.outbox.ok

    def as_json(self, detailed: bool) -> dict[str, Any]:
        """The body of `/readyz`; `detailed` adds the errors' messages (for operators)."""
        core: dict[str, Any] = {"reachable": self.core.ok, "latency_ms": self.core.latency_ms}
        if not self.core.ok:
            core["error"] = self.core.error(detailed)
        stats = self.outbox_stats
        outbox: dict[str, Any] = {
            "depth": stats.depth if stats else None,
            "oldest_age_s": stats.oldest_age_s if stats else None,
        }
        if not self.outbox.ok:
            outbox["error"] = self.outbox.error(detailed)
        return {"ready": self.ready, "core": core, "outbox": outbox}


EMPTY_OUTBOX = OutboxStats(depth=0, oldest_age_s=None)


async def _no_outbox() -> OutboxStats:
    return EMPTY_OUTBOX


class Health:
    """The readiness checks of one app; the outbox registers its probe with `watch_outbox`."""

    def __init__(self, core: HelpdeskCore, metrics: Metrics, timeout_s: float) -> None:
        self.core = core
        self.metrics = metrics
        self.timeout_s = timeout_s
        self._outbox_probe: OutboxProbe = _no_outbox
        self._was_ready: bool | None = None

    def watch_outbox(self, probe: OutboxProbe | None) -> None:
        """Report the outbox through `probe` (None: there is no outbox, report it empty)."""
        self._outbox_probe = probe or _no_outbox

    async def outbox_stats(self) -> OutboxStats | None:
        """The outbox's depth and age now; None when the probe failed or timed out."""
        return (await self._outbox())[1]

    async def check(self) -> Readiness:
        """Ping the core and read the outbox, at the same time, each within the timeout."""

        core, (outbox, stats) = await asyncio.gather(self._timed(self.core.ping), self._outbox())
        outcome = "ok" if core.ok else "timeout" if core.kind == "timeout" else "error"
        self.metrics.core_latency.labels("ping", outcome).observe(core.latency_ms / 1000)
        readiness = Readiness(core, outbox, stats)
        if readiness.ready != self._was_ready:  # a line per change, not per balancer's probe
            self._was_ready = readiness.ready
            if readiness.ready:
                log.info("ready: the core answers")
            else:
                log.warning("not ready: %s", readiness.as_json(detailed=True))
        return readiness

    async def _outbox(self) -> tuple[Outcome, OutboxStats | None]:
        stats: OutboxStats | None = None

        async def probe() -> None:
            nonlocal stats
            stats = await self._outbox_probe()

        outcome = await self._timed(probe)
        return outcome, stats if outcome.ok else None

    async def _timed(self, check: Callable[[], Awaitable[None]]) -> Outcome:
        started = time.perf_counter()

        def elapsed_ms() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            async with asyncio.timeout(self.timeout_s):
                await check()
        except TimeoutError:
            return Outcome(False, elapsed_ms(), "timeout", f"no answer within {self.timeout_s:g} s")
        except Exception as exc:
            cause = getattr(exc, "orig", None) or exc  # SQLAlchemy's wrapper names no cause
            first_line = (str(cause).strip().splitlines() or [""])[0][:300]
            return Outcome(False, elapsed_ms(), type(cause).__name__, first_line)
        return Outcome(True, elapsed_ms())


async def healthz(request: Request) -> Response:
    """The process answers: no I/O, so a slow core never makes it look dead."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    """200 when the core answers and the outbox can be read, else 503; the body says why."""
    readiness = await services(request).health.check()
    return JSONResponse(
        readiness.as_json(detailed=is_operator(request)),
        status_code=200 if readiness.ready else 503,
        headers={"Cache-Control": "no-store"},
    )


routes = [
    Route("/healthz", healthz, name="healthz"),
    Route("/readyz", readyz, name="readyz"),
]
