"""Real `portal` processes for tests: run a command to its end, or serve until stopped.

Each server is the `portal` command line an operator runs (`portal core`, `portal serve`) in a
subprocess, its output in a log file that a failure shows. Readiness is polled with a deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

START_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def portal_command(*args: str, env: dict[str, str]) -> str:
    """Run `portal ARGS...` to its end; its standard output. Fails with its error output."""
    done = subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"portal {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


@dataclass
class PortalProcess:
    """`portal ARGS...` serving on `port` until `stop()`; `start()` again restarts it."""

    args: tuple[str, ...]
    port: int
    env: dict[str, str]
    log: Path
    ready_path: str = "/healthz"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        output = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"portal {self.args[0]} exited:\n{self.log_text()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"portal {self.args[0]} was not ready:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: a clean shutdown), killing it if it hangs."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill it as a crash would (SIGKILL: no shutdown at all)."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
