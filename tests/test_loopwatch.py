"""The loop watch sees a stall: a blocking call holds every task, the watch's wake-up included.
It tells a stall the server spent on the CPU from one it spent off it, and times GC pauses."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from portal.loopwatch import stalls, watch_loop


async def lines(path: Path, count: int) -> list[str]:
    while len(found := path.read_text().splitlines() if path.exists() else []) < count:
        await asyncio.sleep(0.01)
    return found


@asynccontextmanager
async def watching(path: Path) -> AsyncIterator[None]:
    """The watch reporting to `path` every 50 ms, from its first line until the block ends."""
    watch = asyncio.create_task(watch_loop(path, interval=0.002, report_every=0.05))
    try:
        await lines(path, 1)
        yield
    finally:
        watch.cancel()


def spin(cpu_seconds: float) -> None:
    """Hold the loop on the CPU, as rendering or a collection would."""
    until = time.process_time() + cpu_seconds
    while time.process_time() < until:
        pass


async def test_a_blocked_loop_is_reported_as_a_stall(tmp_path: Path) -> None:
    path = tmp_path / "lag.txt"
    async with watching(path):
        start = time.time()
        time.sleep(0.08)  # holds the loop, as a bulk write on it would
        reported = await lines(path, 3)
        end = time.time() + 1
    assert stalls(path, start, end).longest_ms >= 80 - 2  # the watch asked to wake 2 ms later
    assert all(len(line.split()) == 5 for line in reported)
    assert stalls(path, end + 10, end + 20).longest_ms == 0  # nothing reported then
    # Counted by when it ended: a run that began after it does not see it.
    assert stalls(path, start + 0.2, end).longest_ms < 80 - 2


async def test_a_stall_tells_cpu_from_waiting_and_gc_pauses_are_timed(tmp_path: Path) -> None:
    path = tmp_path / "lag.txt"
    async with watching(path):
        asleep = time.time()
        time.sleep(0.08)  # off the CPU: the process did not run
        count = len(await lines(path, 3))
        spun = time.time()
        spin(0.08)  # on the CPU: the server held its own loop
        count = len(await lines(path, count + 2))
        collected = time.time()
        gc.collect()
        await lines(path, count + 2)
        end = time.time() + 1
    waited, held = stalls(path, asleep, spun), stalls(path, spun, collected)
    assert waited.longest_ms >= 78 and held.longest_ms >= 78
    assert waited.off_cpu_ms is not None and held.off_cpu_ms is not None
    # Asleep, the process was off the CPU the whole stall. Spinning, it was on it for 80 ms of
    # the stall, however long the machine kept it waiting besides (the watch measures from its
    # wake-up before, 2 ms earlier).
    assert waited.off_cpu_ms >= waited.longest_ms - 1
    assert held.off_cpu_ms <= held.longest_ms + 2 - 80 + 1
    pause = stalls(path, collected, end).gc_ms
    assert pause is not None and pause > 0
