"""Shared by the benchmarks: which `portal` is measured, its database, `portal serve`, a GET load.

The `portal` measured is the one this interpreter imports: PYTHONPATH=/some/checkout measures
that checkout (a worktree of an older commit, for before/after figures), else the installed one,
else the tree these benchmarks sit in. Servers and floors started here import that same one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _load import on_core

if importlib.util.find_spec("portal") is None:  # neither on PYTHONPATH nor installed
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import portal  # noqa: E402

PORTAL_ROOT = Path(portal.__file__).resolve().parent.parent
# For PostgreSQL runs (--postgres): a database is made (and dropped) through this one.
PG_ADMIN_DSN = os.environ.get(
    "PORTAL_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# The server settings both ours and the floor run with: as behind a reverse proxy that logs
# requests itself (uvicorn's access log would add the same ~0.1 ms to either side).
SERVER_SETTINGS = {"PORTAL_ACCESS_LOG": "0"}


def python_command(*args: str) -> list[str]:
    """`python ARGS` importing the `portal` measured here.

    -P keeps the working directory off sys.path (run from a checkout, `-m portal.cli` would
    import that checkout's portal instead), and PYTHONPATH (see `child_env`) names the measured one.
    """
    return [sys.executable, "-P", *args]


def child_env(**env: str) -> dict[str, str]:
    """This process's environment with PORTAL_ROOT first on PYTHONPATH, plus `env`."""
    paths = [str(PORTAL_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **env}


@contextmanager
def database(data: Path, postgres: bool) -> Iterator[str]:
    """The core's database URL: SQLite in `data`, or a new PostgreSQL database dropped after."""
    if not postgres:
        yield f"sqlite+aiosqlite:///{data.resolve()}/portal.db"
        return
    name = f"portal_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        base = PG_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg_admin(sql: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lag_file(data: Path) -> Path:
    """Where a server `served` over `data` reports its event loop's stalls (see `_load.wrk`)."""
    return data.resolve() / "loop-lag.txt"


@contextmanager
def served(
    data: Path,
    port: int,
    *,
    log: Path | None = None,
    cpu: int | None = None,
    database_url: str = "",
    **env: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """`portal serve` on one uvicorn worker over `data`, until the block ends.

    The server's output is discarded, or appended to `log` when one is given. With `cpu` it runs
    on that core only; with `database_url` the core uses that database (else SQLite in `data`).
    """
    environ = child_env(
        PORTAL_DATA_DIR=str(data.resolve()),
        PORTAL_PORT=str(port),
        PORTAL_DATABASE_URL=database_url,
        PORTAL_LOOP_LAG_FILE=str(lag_file(data)),
        **{**SERVER_SETTINGS, **env},
    )
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    pin = on_core(cpu) if cpu is not None else []
    server = subprocess.Popen(
        [*pin, *python_command("-m", "portal.cli", "serve")],
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
