"""Web form ticket submissions per second through uvicorn on one worker (SQLite core).

Every submission is a new ticket (a fresh idempotency key each time) from one of 500 requesters,
on a form with three custom fields. Prints:
  submissions_api_rps       JSON API (`POST /api/forms/{id}/submissions`, form token), 201s
  submissions_page_rps      the page form (urlencoded, CSRF cookie + token), 303s
  submissions_upload_rps    the page form as multipart with a 2 KB text attachment, 303s
  duplicate_retries_rps     API retries of an already-created submission (same key), 201s
Rate limits are raised for the benchmark tenant (they would stop a single client at once).
Run: .venv/bin/python benchmarks/forms_submit.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import itertools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _server import free_port, served  # noqa: E402

from portal.core.contract import Choice, Field, FormDraft  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402

HOST = "127.0.0.1"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
BOUNDARY = "benchmarkboundary7MA4YWxkTrZu0gW"


def values(n: int) -> dict[str, str]:
    return {
        "name": f"Requester {n % 500}",
        "email": f"requester{n % 500}@example.com",
        "subject": f"Printer number {n} does not print",
        "description": "It stopped this morning.\nThe light blinks orange.",
        "priority": "normal",
        "order_ref": f"A-{n}",
        "quantity": str(n % 7 + 1),
        "product": "sw",
    }


async def http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bytes]:
    """Send one request on a keep-alive connection; (status, head, body)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    return int(head.split(b" ", 2)[1]), head, body


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def multipart(fields: dict[str, str], filename: str, content: bytes) -> bytes:
    parts = []
    for key, value in fields.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    parts.append(
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments"; '
            f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


async def load(
    port: int,
    seconds: float,
    connections: int,
    setup: Callable,
    make: Callable,
    expect: int,
) -> float:
    """Requests/s of `make(n, state)` from keep-alive connections, each after `setup`."""
    stop = time.monotonic() + seconds
    counter = itertools.count()
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            state = await setup(reader, writer)
            while time.monotonic() < stop:
                status, _head, body = await http(reader, writer, make(next(counter), state))
                if status != expect:
                    raise RuntimeError(f"answered {status}: {body[:300]!r}")
                done += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.monotonic() - started)


async def measure(seconds: float, connections: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        core = EmbeddedCore(f"sqlite+aiosqlite:///{data}/portal.db")
        await core.start()
        tenant = await core.create_tenant("bench", "Bench", domains=(HOST,))
        await core.update_tenant_settings(
            tenant.id,
            {"form_ip_limit_per_minute": 10**9, "form_tenant_limit_per_minute": 10**9},
        )
        fields = (
            Field("order_ref", "Order reference", "text"),
            Field("quantity", "Quantity", "number", required=True),
            Field(
                "product",
                "Product",
                "choice",
                required=True,
                options=(Choice("sw", "Software"), Choice("hw", "Hardware")),
            ),
        )
        form = await core.save_form(tenant.id, FormDraft("Support", fields=fields))
        await core.close()

        port = free_port()
        with served(data, port):
            api_path = f"/api/forms/{form.id}"
            page_path = f"/forms/{form.id}"

            async def api_setup(reader, writer):
                status, _, body = await http(reader, writer, request("GET", api_path))
                assert status == 200, body
                return json.loads(body)["form_token"]

            def api_make(n: int, token: str, key: str | None = None) -> bytes:
                payload = values(n) | {"form_token": token, "idempotency_key": key or f"k{n:010d}"}
                return request(
                    "POST",
                    api_path + "/submissions",
                    json.dumps(payload).encode(),
                    {"Content-Type": "application/json"},
                )

            async def page_setup(reader, writer):
                status, head, body = await http(reader, writer, request("GET", page_path))
                assert status == 200, body
                cookie = re.search(rb"set-cookie: (portal_form=[^;]+)", head, re.I)
                assert cookie, head
                tokens = {k: html.unescape(v) for k, v in HIDDEN_RE.findall(body.decode())}
                return cookie.group(1).decode(), tokens

            def page_make(n: int, state) -> bytes:
                cookie, tokens = state
                fields = tokens | values(n) | {"idempotency_key": f"p{n:010d}"}
                return request(
                    "POST",
                    page_path,
                    urlencode(fields).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
                )

            attachment = b"log line\n" * 228  # about 2 KB

            def upload_make(n: int, state) -> bytes:
                cookie, tokens = state
                fields = tokens | values(n) | {"idempotency_key": f"u{n:010d}"}
                body = multipart(fields, f"log-{n}.txt", attachment + str(n).encode())
                return request(
                    "POST",
                    page_path,
                    body,
                    {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Cookie": cookie},
                )

            await load(port, 1, connections, api_setup, api_make, 201)  # warm up
            api = await load(port, seconds, connections, api_setup, api_make, 201)
            print(f"submissions_api_rps: {api:.0f} req/s")
            page = await load(port, seconds, connections, page_setup, page_make, 303)
            print(f"submissions_page_rps: {page:.0f} req/s")
            upload = await load(port, seconds, connections, page_setup, upload_make, 303)
            print(f"submissions_upload_rps: {upload:.0f} req/s")
            retries = await load(
                port,
                seconds,
                connections,
                api_setup,
                lambda n, token: api_make(n % 100, token, key=f"k{n % 100:010d}"),
                201,
            )
            print(f"duplicate_retries_rps: {retries:.0f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, under a minute")
    args = parser.parse_args()
    asyncio.run(measure(4 if args.quick else 15, 16))


if __name__ == "__main__":
    main()
