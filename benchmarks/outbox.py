"""Ticket writes per second through an edge on a remote core, against the embedded core and a floor,
and the time the edge's outbox takes to drain once the core comes back.

Three servers answer the same load, one after another, each on the server core (the load on the
other): an edge (`portal serve` with PORTAL_CORE_URL) in front of `portal core`, both processes on
that one core, so the edge, its outbox and the core share the CPU one embedded process has; the
same `portal serve` on its embedded core; and the floor. Each is loaded by wrk on 16 connections
with form API submissions (`POST /api/forms/{id}/submissions`, JSON, form token, a new ticket
with an idempotency key never sent before each time: the load of forms_submit.py). Prints:
  outbox_edge_to_core_wps       writes/s through the edge to the remote core (201s: each write
                                stored in the outbox, sent, and confirmed by the core in time)
  outbox_edge_to_core_p50_ms / _p99_ms / _busy   latency under that load; CPU time of edge and
                                core / wall time (under ~90%: something else limited it)
  outbox_edge_to_core_cpu_ms    CPU time per write of the edge and the core together, and
  outbox_edge_cpu_ms, outbox_core_cpu_ms   each one's part
  outbox_embedded_wps           the same load on the edge on its embedded core (no outbox)
  outbox_embedded_p50_ms / _p99_ms / _cpu_ms / _busy
  outbox_floor_wps / _cpu_ms    the floor: a bare Starlette POST that parses the same JSON and
                                inserts one SQLite row (`_floor.BARE_ROUTES` `/insert`)
  outbox_vs_embedded            edge to core / embedded, writes/s: the ratio we watch
  outbox_cpu_vs_embedded        CPU per write, edge and core / embedded
  outbox_edge_to_core_vs_floor, outbox_embedded_vs_floor   writes/s, ours / floor
  outbox_queue_wps              with the core stopped: writes/s the edge takes (202, "received")
  outbox_drain_10k_s            10,000 writes queued while the core was stopped (2,000 with
                                --quick, printed as outbox_drain_2k_s): seconds from starting the
                                core until the outbox is empty (`/readyz` depth 0); target < 60 s
  outbox_drain_wps              those writes / those seconds
The edge runs with PORTAL_OUTBOX_* at their defaults. Its read cache (PORTAL_CORE_CACHE_TTL_S)
is raised to an hour: queueing 10,000 writes outlasts the default 30 s, and the tenant and form
would expire with the core down (what is measured here is the outbox, not that).
Each load runs 15 s after a 2 s warm-up (4 s and 1 s with --quick).
Run: .venv/bin/python benchmarks/outbox.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _floor import BARE_ROUTES, floor_server
from _load import (
    SERVER_CPU,
    Run,
    Timing,
    cpu_seconds,
    on_core,
    pin_to_load_core,
    show,
    side_by_side,
    wrk,
)
from _server import SERVER_SETTINGS, child_env, free_port, lag_file, python_command, served
from forms_submit import (
    CONNECTIONS,
    HOST,
    api_lua,
    count_tickets,
    form_token,
    http,
    request,
    values,
)
from forms_submit import seed as seed_tenant

JSON_HEADERS = {"Content-Type": "application/json"}
DRAIN_DEADLINE_S = 600.0


class CoreProcess:
    """`portal core` on the server core over `database_url`; `stop()` and `start()` at will."""

    def __init__(self, data: Path, port: int, database_url: str) -> None:
        self.port = port
        self.env = child_env(
            PORTAL_DATA_DIR=str(data.resolve()), PORTAL_DATABASE_URL=database_url, **SERVER_SETTINGS
        )
        self.log = data / "core.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self, *args: str) -> str:
        """`portal ARGS` on the core's database, to its end: its output."""
        done = subprocess.run(
            python_command("-m", "portal.cli", *args), env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"portal {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    *on_core(SERVER_CPU),
                    *python_command("-m", "portal.cli", "core", "--host", "127.0.0.1"),
                    *("--port", str(self.port)),
                ],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"portal core exited:\n{self.log.read_text()[-3000:]}")
            try:
                url = f"http://127.0.0.1:{self.port}/core/v1/openapi.json"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("portal core did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None


@contextmanager
def core_process(data: Path, port: int, database_url: str) -> Iterator[CoreProcess]:
    core = CoreProcess(data, port, database_url)
    core.start()
    try:
        yield core
    finally:
        core.stop()


def outbox_depth(port: int) -> int | None:
    """The edge's outbox depth as `/readyz` reports it; None while the core is not reachable."""
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()
    return ready["outbox"]["depth"] if ready["ready"] else None


def wait_drained(port: int) -> float:
    """Seconds until the edge's outbox is empty (polled every 50 ms)."""
    started = time.monotonic()
    while outbox_depth(port) != 0:
        if time.monotonic() - started > DRAIN_DEADLINE_S:
            raise RuntimeError(f"the outbox did not drain in {DRAIN_DEADLINE_S:.0f} s")
        time.sleep(0.05)
    return time.monotonic() - started


async def send_writes(port: int, form_id: int, token: str, count: int, prefix: str) -> float:
    """`count` new submissions from 16 keep-alive connections, each answered 202 (the core is
    down); how many were taken per second."""
    numbers = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for n in numbers:
                payload = values(n) | {"form_token": token, "idempotency_key": f"{prefix}-{n}"}
                sent = request(
                    "POST",
                    f"/api/forms/{form_id}/submissions",
                    json.dumps(payload).encode(),
                    JSON_HEADERS,
                )
                status, _, body = await http(reader, writer, sent)
                if status != 202:
                    raise RuntimeError(f"a write with the core down answered {status}: {body!r}")
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return count / (time.monotonic() - started)


def rates(name: str, run: Run, cpu_s: float) -> list[tuple[str, float, str]]:
    """A load's figures, with `cpu_s` the CPU time of every process that served it."""
    return [
        (f"{name}_wps", run.rps, "writes/s"),
        (f"{name}_p50_ms", run.p50_ms, "ms"),
        (f"{name}_p99_ms", run.p99_ms, "ms"),
        (f"{name}_cpu_ms", 1000 * cpu_s / max(run.requests, 1), "ms/req"),
        (f"{name}_busy", 100 * cpu_s / run.seconds, "%"),
    ]


def measure(timing: Timing, drain_count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("core", "edge", "embedded"):
            (root / name).mkdir()
        core_url = f"sqlite+aiosqlite:///{(root / 'core').resolve()}/portal.db"
        embedded_url = f"sqlite+aiosqlite:///{(root / 'embedded').resolve()}/portal.db"
        form_id = asyncio.run(seed_tenant(core_url))
        embedded_form_id = asyncio.run(seed_tenant(embedded_url))
        core_port, edge_port, embedded_port, floor_port = (free_port() for _ in range(4))
        path = f"/api/forms/{form_id}/submissions"
        embedded_path = f"/api/forms/{embedded_form_id}/submissions"
        with core_process(root / "core", core_port, core_url) as core:
            key = core.command("core-key", "--tenant", "bench", "--name", "bench").strip()
            edge_env = {
                "PORTAL_CORE_URL": f"http://127.0.0.1:{core_port}",
                "PORTAL_CORE_KEY": key,
                "PORTAL_CORE_CACHE_TTL_S": "3600",
            }
            with (
                served(root / "edge", edge_port, cpu=SERVER_CPU, **edge_env) as edge,
                served(root / "embedded", embedded_port, cpu=SERVER_CPU, database_url=embedded_url)
                as embedded,
                floor_server(BARE_ROUTES, floor_port, cpu=SERVER_CPU) as floor,
            ):  # fmt: skip
                token = form_token(edge_port, form_id)
                embedded_token = form_token(embedded_port, embedded_form_id)
                core_cpu: list[float] = []
                edge_runs: list[Run] = []

                def edge_run(seconds: float) -> Run:
                    before = cpu_seconds(core.pid)
                    lua = api_lua(path, token)
                    lag = lag_file(root / "edge")
                    run = wrk(edge_port, edge.pid, seconds, lua=lua, headers=JSON_HEADERS,
                              lag_file=lag)  # fmt: skip
                    core_cpu.append(cpu_seconds(core.pid) - before)
                    edge_runs.append(run)
                    return run

                def embedded_run(seconds: float) -> Run:
                    lua = api_lua(embedded_path, embedded_token)
                    lag = lag_file(root / "embedded")
                    return wrk(embedded_port, embedded.pid, seconds, lua=lua,
                               headers=JSON_HEADERS, lag_file=lag)  # fmt: skip

                def floor_run(seconds: float) -> Run:
                    lua = api_lua("/insert", token)
                    return wrk(floor_port, floor.pid, seconds, lua=lua, headers=JSON_HEADERS)

                remote, floor_figures = side_by_side(edge_run, floor_run, timing)
                remote_cpu = core_cpu[-1] + remote.cpu_seconds
                if timing.warm:
                    embedded_run(timing.warm)
                local = embedded_run(timing.run)

                # Every answer was a ticket at the core (a write left in the outbox counts once
                # it is drained; wrk does not count answers in flight when it stops).
                wait_drained(edge_port)
                made = asyncio.run(count_tickets(core_url))
                answered = sum(run.requests for run in edge_runs)
                print(f"# edge: {answered} answers, {made} tickets at the core", file=sys.stderr)
                if made < answered:
                    raise RuntimeError("some answers through the edge made no ticket")

                rows = rates("outbox_edge_to_core", remote, remote_cpu)
                rows += [
                    ("outbox_edge_cpu_ms", remote.cpu_ms, "ms/req"),
                    ("outbox_core_cpu_ms", 1000 * core_cpu[-1] / remote.requests, "ms/req"),
                ]
                rows += rates("outbox_embedded", local, local.cpu_seconds)
                rows += [
                    ("outbox_floor_wps", floor_figures.rps, "writes/s"),
                    ("outbox_floor_cpu_ms", floor_figures.cpu_ms, "ms/req"),
                    ("outbox_vs_embedded", remote.rps / local.rps, "ratio"),
                    (
                        "outbox_cpu_vs_embedded",
                        (remote_cpu / remote.requests) / (local.cpu_seconds / local.requests),
                        "ratio",
                    ),
                    ("outbox_edge_to_core_vs_floor", remote.rps / floor_figures.rps, "ratio"),
                    ("outbox_embedded_vs_floor", local.rps / floor_figures.rps, "ratio"),
                ]
                show(rows)
                for name, value, unit in drain(
                    core, edge_port, form_id, token, drain_count, made, core_url
                ):
                    print(f"{name}: {value:.1f} {unit}", flush=True)


def drain(
    core: CoreProcess,
    edge_port: int,
    form_id: int,
    token: str,
    count: int,
    tickets_before: int,
    core_url: str,
) -> list[tuple[str, float, str]]:
    """Queue `count` writes with the core stopped, start it, time the outbox's drain."""
    core.stop()
    queue_wps = asyncio.run(send_writes(edge_port, form_id, token, count, f"drain{time.time_ns()}"))
    print(f"# queued {count} writes at {queue_wps:.0f}/s", file=sys.stderr)
    started = time.monotonic()
    core.start()
    drained_s = time.monotonic() - started + wait_drained(edge_port)
    made = asyncio.run(count_tickets(core_url)) - tickets_before
    if made != count:
        raise RuntimeError(f"{count} writes queued, {made} tickets made at the core")
    label = f"{count // 1000}k"
    return [
        ("outbox_queue_wps", queue_wps, "writes/s"),
        (f"outbox_drain_{label}_s", drained_s, "s"),
        ("outbox_drain_wps", count / drained_s, "writes/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, under a minute")
    args = parser.parse_args()
    pin_to_load_core()
    if args.quick:
        measure(Timing(warm=1, run=4), drain_count=2_000)
    else:
        measure(Timing(warm=2, run=15), drain_count=10_000)


if __name__ == "__main__":
    main()
