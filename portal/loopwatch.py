"""How long the event loop stalls: a task that asks to wake every few milliseconds and notes
how late it woke. Every request in flight waits as long as the loop is held, so the longest
stall under load is what a benchmark reports (`PORTAL_LOOP_LAG_FILE`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

INTERVAL = 0.005  # the watch's own cost: one wake-up per interval


async def watch_loop(path: Path, interval: float = INTERVAL, report_every: float = 1.0) -> None:
    """Append `unix_time longest_stall_ms` to `path` once per `report_every` seconds, for the
    longest lateness of a wake-up in that window (0 when the loop was never held).

    The wake-ups are timer callbacks, not a task sleeping: 200 a second are measured along
    with the server's own work, and a callback costs a fraction of a task's step."""
    loop = asyncio.get_running_loop()
    with path.open("a", buffering=1) as out:
        window_start, longest = loop.time(), 0.0
        timer: asyncio.TimerHandle | None = None

        def wake(due: float) -> None:
            nonlocal window_start, longest, timer
            woke = loop.time()
            longest = max(longest, woke - due)
            if woke - window_start >= report_every:
                out.write(f"{time.time():.3f} {longest * 1000:.2f}\n")
                window_start, longest = woke, 0.0
            timer = loop.call_at(woke + interval, wake, woke + interval)

        timer = loop.call_at(window_start + interval, wake, window_start + interval)
        try:
            await asyncio.Event().wait()  # until cancelled: the wake-ups do the watching
        finally:
            if timer is not None:
                timer.cancel()


def longest_stall_ms(path: Path, start: float, end: float) -> float:
    """The longest stall the watch reported for windows ending within [start, end] (unix time)."""
    found = 0.0
    for line in path.read_text().splitlines():
        stamp, stall = (float(part) for part in line.split())
        if start <= stamp <= end:
            found = max(found, stall)
    return found
