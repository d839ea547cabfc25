"""The floor each benchmark measures beside ours: a bare Starlette app on our uvicorn settings.

`floor_server(routes_source, port)` runs, in a subprocess, a Starlette app whose routes are
defined by `routes_source` (Python that binds `routes`), configured by `portal.serving` exactly as
`portal serve` is, so ours/floor ratios compare the app's work and nothing else.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import sys
import uvicorn
from starlette.applications import Starlette
from portal.serving import server_config
from portal.settings import Settings
{routes_source}
config = server_config(
    Starlette(routes=routes), Settings(), port=int(sys.argv[1]), log_level="warning"
)
uvicorn.Server(config).run()
"""


@contextlib.contextmanager
def floor_server(routes_source: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The floor app on 127.0.0.1:`port` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER.format(routes_source=routes_source), str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the floor server did not start")
        yield process
    finally:
        process.terminate()
        process.wait()
