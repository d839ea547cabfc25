"""The loop watch sees a stall: a blocking call holds every task, the watch's wake-up included."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from portal.loopwatch import longest_stall_ms, watch_loop


async def lines(path: Path, count: int) -> list[str]:
    while len(found := path.read_text().splitlines() if path.exists() else []) < count:
        await asyncio.sleep(0.01)
    return found


async def test_a_blocked_loop_is_reported_as_a_stall(tmp_path: Path) -> None:
    path = tmp_path / "lag.txt"
    watch = asyncio.create_task(watch_loop(path, interval=0.002, report_every=0.05))
    try:
        await lines(path, 1)
        start = time.time()
        time.sleep(0.08)  # holds the loop, as a bulk write on it would
        reported = await lines(path, 3)
        end = time.time() + 1
    finally:
        watch.cancel()
    assert longest_stall_ms(path, start, end) >= 80 - 2  # the watch asked to wake 2 ms later
    assert all(len(line.split()) == 3 for line in reported)
    assert longest_stall_ms(path, end + 10, end + 20) == 0  # nothing reported then
    # Counted by when it ended: a run that began after it does not see it.
    assert longest_stall_ms(path, start + 0.2, end) < 80 - 2
