"""Shared by the benchmarks: a `portal serve` subprocess and a keep-alive GET load."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served(
    data: Path, port: int, *, log: Path | None = None, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`portal serve` on one uvicorn worker over `data`, until the block ends.

    The server's output is discarded, or appended to `log` when one is given.
    """
    environ = {**os.environ, "PORTAL_DATA_DIR": str(data), "PORTAL_PORT": str(port), **env}
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    server = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "serve"],
        env=environ,
        stdout=output,
        stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        yield server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if log is not None:
            output.close()  # type: ignore[union-attr]


async def http_load(
    port: int, paths: list[str], seconds: float, headers: str = "", connections: int = 16
) -> float:
    """Requests/s from keep-alive connections sending GETs one after another (no pipelining)."""
    stop = time.monotonic() + seconds
    done = 0
    rng = random.Random(7)

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                path = rng.choice(paths)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}")
                done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.monotonic() - started)
