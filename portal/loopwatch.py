"""How long the event loop stalls: a task that asks to wake every few milliseconds and notes
how late it woke. Every request in flight waits as long as the loop is held, so the longest
stall under load is what a benchmark reports (`PORTAL_LOOP_LAG_FILE`).

A stall is not always the server's doing: on a shared machine the process may simply not have
run. So the watch also notes how long the process was off the CPU across the longest stall
(near 0: the server's own work held the loop; near the stall's length: the process did not run,
descheduled by the machine or blocked in a system call) and the longest garbage collection
pause, which holds the loop like any other work."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INTERVAL = 0.005  # the watch's own cost: one wake-up per interval


class _GcPauses:
    """The longest collection pause since `take()`, timed by the collector's callbacks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
        elif now - self._started > self.longest:
            self.longest = now - self._started

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


async def watch_loop(path: Path, interval: float = INTERVAL, report_every: float = 1.0) -> None:
    """Append `unix_time longest_stall_ms stall_ended_at off_cpu_ms longest_gc_ms` to `path`
    once per `report_every` seconds: the longest lateness of a wake-up in that window (0 when
    the loop was never held), the unix time that stall ended (a run of load counts the stalls it
    saw, not those of the window's earlier part, such as the server's start), how long the
    process was off the CPU from the wake-up before that stall to its end (wall time less the
    process's CPU time), and the window's longest GC pause.

    The wake-ups are timer callbacks, not a task sleeping: 200 a second are measured along
    with the server's own work, and a callback costs a fraction of a task's step."""
    loop = asyncio.get_running_loop()
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    with path.open("a", buffering=1) as out:
        window_start, longest, longest_at, longest_off = loop.time(), 0.0, time.time(), 0.0
        last_woke, last_cpu = window_start, time.process_time()
        timer: asyncio.TimerHandle | None = None

        def wake(due: float) -> None:
            nonlocal window_start, longest, longest_at, longest_off, last_woke, last_cpu, timer
            woke, cpu = loop.time(), time.process_time()
            if woke - due > longest:
                off = max(0.0, (woke - last_woke) - (cpu - last_cpu))
                longest, longest_at, longest_off = woke - due, time.time(), off
            last_woke, last_cpu = woke, cpu
            if woke - window_start >= report_every:
                now = time.time()
                out.write(
                    f"{now:.3f} {longest * 1000:.2f} {longest_at:.3f} "
                    f"{longest_off * 1000:.2f} {pauses.take() * 1000:.2f}\n"
                )
                window_start, longest, longest_at = woke, 0.0, now
            timer = loop.call_at(woke + interval, wake, woke + interval)

        timer = loop.call_at(window_start + interval, wake, window_start + interval)
        try:
            await asyncio.Event().wait()  # until cancelled: the wake-ups do the watching
        finally:
            gc.callbacks.remove(pauses)
            if timer is not None:
                timer.cancel()


@dataclass(frozen=True)
class Stalls:
    """What the watch saw during a run: its longest stall, how long the process was off the CPU
    across it (None from an older watch), and the longest GC pause."""

    longest_ms: float = 0.0
    off_cpu_ms: float | None = None
    gc_ms: float | None = None


def stalls(path: Path, start: float, end: float) -> Stalls:
    """What the watch reported for stalls that ended within [start, end] (unix time); for lines
    without that moment (an older watch), those of windows ending then."""
    seen: list[tuple[float, float | None, float | None]] = []
    for line in path.read_text().splitlines():
        stamp, stall, *more = (float(part) for part in line.split())
        if start <= (more[0] if more else stamp) <= end:
            seen.append((stall, more[1], more[2]) if len(more) == 3 else (stall, None, None))
    if not seen:
        return Stalls()
    longest, off_cpu, _ = max(seen, key=lambda row: row[0])
    pauses = [pause for _, _, pause in seen if pause is not None]
    return Stalls(longest, off_cpu, max(pauses) if pauses else None)
