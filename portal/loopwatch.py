"""How long the event loop stalls: a task that asks to wake every few milliseconds and notes
how late it woke. Every request in flight waits as long as the loop is held, so the longest
stall under load is what a benchmark reports (`PORTAL_LOOP_LAG_FILE`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

INTERVAL = 0.005  # the watch's own cost: one wake-up per interval


async def watch_loop(path: Path, interval: float = INTERVAL, report_every: float = 1.0) -> None:
    """Append `unix_time longest_stall_ms stall_ended_at` to `path` once per `report_every`
    seconds, for the longest lateness of a wake-up in that window (0 when the loop was never
    held) and the unix time that stall ended: a run of load counts the stalls it saw, not those
    of the window's earlier part (the server's start, when the first run begins at once).

    The wake-ups are timer callbacks, not a task sleeping: 200 a second are measured along
    with the server's own work, and a callback costs a fraction of a task's step."""
    loop = asyncio.get_running_loop()
    with path.open("a", buffering=1) as out:
        window_start, longest, longest_at = loop.time(), 0.0, time.time()
        timer: asyncio.TimerHandle | None = None

        def wake(due: float) -> None:
            nonlocal window_start, longest, longest_at, timer
            woke = loop.time()
            if woke - due > longest:
                longest, longest_at = woke - due, time.time()
            if woke - window_start >= report_every:
                now = time.time()
                out.write(f"{now:.3f} {longest * 1000:.2f} {longest_at:.3f}\n")
                window_start, longest, longest_at = woke, 0.0, now
            timer = loop.call_at(woke + interval, wake, woke + interval)

        timer = loop.call_at(window_start + interval, wake, window_start + interval)
        try:
            await asyncio.Event().wait()  # until cancelled: the wake-ups do the watching
        finally:
            if timer is not None:
                timer.cancel()


def longest_stall_ms(path: Path, start: float, end: float) -> float:
    """The longest stall the watch reported that ended within [start, end] (unix time); for
    lines without that moment (an older watch), those of windows ending then."""
    found = 0.0
    for line in path.read_text().splitlines():
        stamp, stall, *ended = (float(part) for part in line.split())
        if start <= (ended[0] if ended else stamp) <= end:
            found = max(found, stall)
    return found
