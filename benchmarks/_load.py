"""Load and accounting shared by the benchmarks: pinned cores, `wrk` runs, a server's CPU time.

Absolute requests/s differ by 1.5-3x between machines of the same kind (issue 10), so every
benchmark measures ours and a floor (`_floor.py`) under the same load on the same cores and prints
the ratios. The server gets one core and the load generator the other: on a 2-core machine a
server sharing its core with wrk or with client processes would be measured together with them.

`wrk` (Debian's, with LuaJIT) generates HTTP load: a C client on one core does far more requests
per second than any of our servers, so what is measured is the server. Its Lua `done` hook
prints the summary as JSON, which is parsed rather than wrk's human-readable text.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portal.loopwatch import Stalls, stalls


def _cores() -> tuple[int, int]:
    """(server core, load core): the first and the last the benchmark may run on. Processes it
    starts (already pinned to the load core) are told by the environment."""
    told = os.environ.get("PORTAL_BENCH_CORES")
    if told:
        server, load = (int(core) for core in told.split(","))
        return server, load
    allowed = sorted(os.sched_getaffinity(0))
    os.environ["PORTAL_BENCH_CORES"] = f"{allowed[0]},{allowed[-1]}"
    return allowed[0], allowed[-1]


SERVER_CPU, LOAD_CPU = _cores()
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CONNECTIONS = 16  # as the benchmarks' load always had: enough to keep one worker saturated


def pin_to_load_core() -> None:
    """Run this process (and what it starts, unless told otherwise) on the load core.

    Also notes on stderr how busy the machine is: on a shared machine, other programs' load
    moves every figure, ratios included, and whoever reads the figures should know it.
    """
    os.sched_setaffinity(0, {LOAD_CPU})
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"# load average {load} on {os.cpu_count()} cores; servers on core {SERVER_CPU}, "
        f"load generators on core {LOAD_CPU}",
        file=sys.stderr,
        flush=True,
    )


def on_core(cpu: int) -> list[str]:
    """A command prefix that runs a program, and every thread it starts, on `cpu`.

    `taskset` execs the program in the same process, so a Popen's pid stays the server's.
    """
    return ["taskset", "-c", str(cpu)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's living threads, to the nanosecond (/proc/PID/task/*/schedstat):
    for short runs, where `cpu_seconds`' 10 ms ticks would be a few percent. Threads that
    ended meanwhile are not counted: for servers whose threads live as long as they do."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            pass
    return total / 1e9


@dataclass(frozen=True)
class Run:
    """One load run against one server: what the client saw and what the server spent."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float  # the server's CPU time during the run
    # The event loop's stalls during the run, when the server reports them
    # (`PORTAL_LOOP_LAG_FILE`, which `_server.served` sets): every request waits that long.
    loop: Stalls | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time per request."""
        return 1000 * self.cpu_seconds / max(self.requests, 1)

    @property
    def busy(self) -> float:
        """The server's CPU time / wall time: under ~0.9, something other than its CPU limits it."""
        return self.cpu_seconds / self.seconds


# Appended to every script: the summary as one JSON line (latencies are in microseconds).
REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %.0f, "p99_us": %.0f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    """A Lua long-bracket literal: nothing inside is an escape, so any bytes go through as is."""
    level = "=" * 4
    if f"]{level}]" in text:
        raise ValueError("the text closes the long bracket")
    return f"[{level}[{text}]{level}]"


def paths_lua(paths: list[str]) -> str:
    """A `request` hook sending GETs to `paths` in turn (wrk's own headers, -H, go with each)."""
    table = ",\n".join(lua_string(path) for path in paths)
    return f"""
local paths = {{
{table}
}}
local turn = 0
request = function()
  turn = turn + 1
  return wrk.format(nil, paths[(turn % #paths) + 1])
end
"""


def wrk(
    port: int,
    pid: int,
    seconds: float,
    *,
    paths: list[str] | None = None,
    lua: str | None = None,
    headers: dict[str, str] | None = None,
    connections: int = CONNECTIONS,
    lag_file: Path | None = None,
) -> Run:
    """Run wrk on the load core against 127.0.0.1:`port`, reading server `pid`'s CPU around it.

    Either `paths` (GETs in turn) or `lua` (a script defining `request`, for POSTs whose bodies
    change per request). Any answer of 400 or above, or a failed connection, is an error: a
    benchmark answered with errors measures the errors, so it stops rather than print.
    """
    script = lua if lua is not None else paths_lua(paths or ["/"])
    # Host without the port, as a browser behind a proxy on :80 sends it; tenants are found by it.
    all_headers = {"Host": "127.0.0.1", **(headers or {})}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script + REPORT_LUA)
    try:
        command = [
            *on_core(LOAD_CPU), WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency", "-s", file.name,
        ]  # fmt: skip
        for name, value in all_headers.items():
            command += ["-H", f"{name}: {value}"]
        command.append(f"http://127.0.0.1:{port}/")
        before, started = cpu_seconds(pid), time.time()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        spent, ended = cpu_seconds(pid) - before, time.time()
    finally:
        os.unlink(file.name)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[-1].removeprefix("WRK_RESULT "))
    failed = {k: result[k] for k in ("connect", "read", "write", "status", "timeout") if result[k]}
    if failed.get("status") or failed.get("connect"):
        raise RuntimeError(f"wrk on :{port}: {failed} of {result['requests']} requests")
    if failed:  # a few reads cut by keep-alive closes or a slow answer: noted, not fatal
        print(f"# wrk on :{port}: {failed} of {result['requests']} requests", file=sys.stderr)
    return Run(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_seconds=spent,
        loop=loop_stall(lag_file, started, ended),
    )


def loop_stall(lag_file: Path | None, started: float, ended: float) -> Stalls | None:
    """The stalls the server reported that ended during a run (the watch writes each second's
    figures a moment after it ends, so wait for that line)."""
    if lag_file is None:
        return None
    deadline = time.time() + 3
    while time.time() < deadline:
        lines = lag_file.read_text().splitlines() if lag_file.exists() else []
        if lines and float(lines[-1].split()[0]) >= ended:
            break
        time.sleep(0.1)
    return stalls(lag_file, started, ended)


@dataclass(frozen=True)
class Timing:
    warm: float  # seconds of unmeasured load on ours first: its caches, the database's pages
    run: float  # seconds measured, for ours and then for the floor


def side_by_side(
    ours: Callable[[float], Run], floor: Callable[[float], Run], timing: Timing
) -> tuple[Run, Run]:
    """Warm ours, measure it, then measure the floor right after, on the same machine's moment.

    The floor needs no warm-up: it has no cache, and what it builds is built on its first request.
    Each callable runs a load for the seconds it is given (say `functools.partial(wrk, ...)`).
    """
    if timing.warm:
        ours(timing.warm)
    measured = ours(timing.run)
    return measured, floor(timing.run)


def mean_size(port: int, paths: list[str], headers: dict[str, str] | None = None) -> int:
    """The mean body size of GETs to `paths`: what a floor should match.

    Each must answer 200; wrk counts redirects as answers, so a path that redirects (to a sign-in
    page, say) is caught here, before it is measured.
    """
    sizes = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for path in paths:
            connection.request("GET", path, headers={"Host": "127.0.0.1", **(headers or {})})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
            sizes.append(len(body))
    finally:
        connection.close()
    return round(sum(sizes) / len(sizes))


def figures(name: str, ours: Run, floor: Run, tag: str = "") -> list[tuple[str, float, str]]:
    """The figures of one path measured against its floor, as (name, value, unit).

    `NAME_rps{tag}` keeps the name the benchmarks printed before floors were measured; `tag` is a
    suffix such as "_5k" (an index size), so history stays comparable.
    """
    return [
        (f"{name}_rps{tag}", ours.rps, "req/s"),
        (f"{name}_p50_ms{tag}", ours.p50_ms, "ms"),
        (f"{name}_p99_ms{tag}", ours.p99_ms, "ms"),
        (f"{name}_cpu_ms{tag}", ours.cpu_ms, "ms/req"),
        (f"{name}_busy{tag}", 100 * ours.busy, "%"),
        (f"{name}_floor_rps{tag}", floor.rps, "req/s"),
        (f"{name}_floor_p50_ms{tag}", floor.p50_ms, "ms"),
        (f"{name}_floor_p99_ms{tag}", floor.p99_ms, "ms"),
        (f"{name}_floor_cpu_ms{tag}", floor.cpu_ms, "ms/req"),
        (f"{name}_floor_busy{tag}", 100 * floor.busy, "%"),
        (f"{name}_vs_floor{tag}", ours.rps / floor.rps, "ratio"),
        (f"{name}_cpu_vs_floor{tag}", ours.cpu_ms / max(floor.cpu_ms, 1e-9), "ratio"),
        *stall_figures(name, ours.loop, tag),
        # The floor runs the same watch: its stalls are the machine's own during the run.
        *stall_figures(f"{name}_floor", floor.loop, tag),
    ]


def stall_figures(name: str, seen: Stalls | None, tag: str = "") -> list[tuple[str, float, str]]:
    """The loop's longest stall, how long the server was off the CPU across it (near 0: its own
    work held the loop; near the stall: the machine did not run it) and the longest GC pause."""
    if seen is None:
        return []
    rows = [(f"{name}_loop_stall_ms{tag}", seen.longest_ms, "ms")]
    if seen.off_cpu_ms is not None:
        rows.append((f"{name}_loop_stall_off_cpu_ms{tag}", seen.off_cpu_ms, "ms"))
    if seen.gc_ms is not None:
        rows.append((f"{name}_gc_pause_ms{tag}", seen.gc_ms, "ms"))
    return rows


def show(rows: list[tuple[str, float, str]]) -> None:
    """Print `name: value unit` lines: ratios and milliseconds with decimals, counts without."""
    for name, value, unit in rows:
        if unit in ("ms/req", "ms/msg"):
            shown = f"{value:.3f}"
        elif unit in ("ratio", "ms"):
            shown = f"{value:.2f}" if unit != "ms" or value < 100 else f"{value:.0f}"
        else:
            shown = f"{value:.0f}"
        print(f"{name}: {shown} {unit}", flush=True)
