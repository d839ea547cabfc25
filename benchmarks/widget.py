"""The widget's weight on a customer's page, and how fast one worker serves its loader.

The server is `python -m portal.cli serve` over the demo data (tenant on 127.0.0.1), in a
subprocess. Sizes are of the exact bytes served, compressed here at the levels a CDN or proxy
would use (gzip -9, brotli 11):
  loader_gzip_bytes / loader_brotli_bytes    GET /widget.js (the loader with its config inlined)
  preclick_gzip_bytes / preclick_brotli_bytes  every byte a page fetches from us before the
                                             visitor's first click (counted in Chromium)
  preclick_requests                          requests to us before that click (Chromium)
  panel_gzip_bytes                           the panel's first view: its HTML, CSS and script
Throughput, keep-alive GETs from 16 connections for 10 s (3 s with --quick):
  loader_rps / config_rps                    GET /widget.js and /widget/config.json
  loader_not_modified_rps                    GET /widget.js with a matching If-None-Match (304),
                                             what returning visitors cost
  floor_rps                                  a bare Starlette app on the same uvicorn settings
                                             answering the same bytes from memory
  loader_vs_floor / config_vs_floor          ours / floor
The pre-click figures need Chromium (/usr/bin/chromium); without it they are not printed.
Run: .venv/bin/python benchmarks/widget.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import brotli  # noqa: E402
from _floor import floor_server  # noqa: E402
from _server import child_env, free_port, http_load, python_command, served  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request) as response:
        return response.read(), dict(response.headers)


def gz(data: bytes) -> int:
    return len(gzip.compress(data, 9))


def br(data: bytes) -> int:
    return len(brotli.compress(data, quality=11))


async def preclick(port: int, sample_port: int) -> tuple[int, list[bytes]] | None:
    """(requests to us, their bodies) while a page with the snippet loads, in Chromium."""
    if not os.path.exists(CHROMIUM):
        return None
    from playwright.async_api import async_playwright

    ours = f"http://127.0.0.1:{port}"
    bodies: list[bytes] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page()
        seen: list[object] = []
        page.on("response", lambda r: seen.append(r) if r.url.startswith(ours) else None)
        await page.goto(f"http://127.0.0.2:{sample_port}/")
        await page.locator("portal-help-widget button.launch").wait_for()
        for response in seen:
            bodies.append(await response.body())  # type: ignore[attr-defined]
        await browser.close()
    return len(bodies), bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    figures: list[tuple[str, float, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = child_env(PORTAL_DATA_DIR=str(data))
        subprocess.run(
            python_command("-m", "portal.cli", "demo"), env=env, check=True, capture_output=True
        )
        port, sample_port = free_port(), free_port()
        with served(data, port):
            # (The same Host as the load below: the config names our origin, so the ETag differs.)
            loader, headers = fetch(port, "/widget.js", {"Host": "127.0.0.1"})
            panel = fetch(port, "/widget/panel")[0]
            panel_css = fetch(port, "/static/widget/panel.css")[0]
            panel_js = fetch(port, "/static/widget/panel.js")[0]
            figures += [
                ("loader_gzip_bytes", gz(loader), "bytes"),
                ("loader_brotli_bytes", br(loader), "bytes"),
                ("panel_gzip_bytes", gz(panel) + gz(panel_css) + gz(panel_js), "bytes"),
            ]
            sample = subprocess.Popen(
                python_command(
                    "-m", "portal.cli", "sample-site", "--port", str(sample_port),
                    "--service", f"http://127.0.0.1:{port}",
                ),
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                floor_wait(sample_port)
                counted = asyncio.run(preclick(port, sample_port))
            finally:
                sample.terminate()
                sample.wait()
            if counted is not None:
                count, bodies = counted
                figures += [
                    ("preclick_requests", count, "requests"),
                    ("preclick_gzip_bytes", sum(gz(b) for b in bodies), "bytes"),
                    ("preclick_brotli_bytes", sum(br(b) for b in bodies), "bytes"),
                ]
            etag = f"If-None-Match: {headers['etag']}\r\n"
            loader_rps = asyncio.run(http_load(port, ["/widget.js"], seconds))
            config_rps = asyncio.run(http_load(port, ["/widget/config.json"], seconds))
            not_modified = asyncio.run(http_load_304(port, etag, seconds))

    floor_port = free_port()
    floor_routes = FLOOR_ROUTES.replace("BODY", repr(loader))
    with floor_server(floor_routes, floor_port):
        floor_rps = asyncio.run(http_load(floor_port, ["/widget.js"], seconds))
    figures += [
        ("loader_rps", loader_rps, "req/s"),
        ("config_rps", config_rps, "req/s"),
        ("loader_not_modified_rps", not_modified, "req/s"),
        ("floor_rps", floor_rps, "req/s"),
        ("loader_vs_floor", loader_rps / floor_rps, "ratio"),
        ("config_vs_floor", config_rps / floor_rps, "ratio"),
    ]
    for name, value, unit in figures:
        shown = f"{value:.2f}" if unit == "ratio" else f"{value:.0f}"
        print(f"{name}: {shown} {unit}")


FLOOR_ROUTES = """
from starlette.responses import Response
from starlette.routing import Route

async def loader(request):
    return Response(BODY, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

routes = [Route("/widget.js", loader)]
"""


async def http_load_304(port: int, etag_header: str, seconds: float) -> float:
    """Like http_load, with If-None-Match: the answers are 304s without a body."""
    import time

    stop = time.monotonic() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                writer.write(
                    f"GET /widget.js HTTP/1.1\r\nHost: 127.0.0.1\r\n{etag_header}\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 304"):
                    raise RuntimeError(head[:40])
                done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(16)))
    return done / (time.monotonic() - started)


def floor_wait(port: int) -> None:
    import socket
    import time

    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.2", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the sample site did not start")


if __name__ == "__main__":
    main()
