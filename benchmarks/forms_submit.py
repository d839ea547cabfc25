"""Web form ticket submissions per second through uvicorn on one worker, against a floor.

Every submission is a new ticket from one of 500 requesters, on a form with three custom
fields: every request, in warm-ups and in measurements alike, carries an idempotency key never
sent before (a reused key is answered from the first ticket, far more cheaply, and would flatter
the figure). The server runs on one core, the load on the other. Prints:
  submissions_api_rps       JSON API (`POST /api/forms/{id}/submissions`, form token), 201s,
                            loaded by wrk (16 connections; a Lua script makes each body and key)
  submissions_api_p50_ms / _p99_ms / _cpu_ms / _busy   latency under that load, the server's CPU
                            time per request, its CPU time / wall time
  submissions_api_log_mb    (SQLite) the size of the database's write-ahead log after the API's
                            load: under steady writes it must keep starting over, not grow
  submissions_api_floor_*   the same for the floor: a bare Starlette app on the same uvicorn
                            settings whose POST parses the same JSON body and inserts one SQLite
                            row (WAL, synchronous=NORMAL, committed), 201 (`_floor.BARE_ROUTES`)
  submissions_api_vs_floor / submissions_api_cpu_vs_floor   ours / floor: req/s, CPU per request
  submissions_page_rps      the page form (urlencoded, CSRF cookie + token), 303s
  submissions_upload_rps    the page form as multipart with a 2 KB text attachment, 303s
  duplicate_retries_rps     API retries of 100 already-created submissions (same keys), 201s
  NAME_cpu_ms               for those three: the server's CPU time per request
The last three come from a Python client on 16 keep-alive connections (each needs its own
cookie and tokens). Each load runs 15 s (4 s with --quick), the API's after a 2 s (1 s) warm-up.
Rate limits are raised for the benchmark tenant (they would stop a single client at once).
Run: .venv/bin/python benchmarks/forms_submit.py [--quick] [--postgres]
  --postgres  our core on a new PostgreSQL database (PORTAL_BENCH_PG_DSN, default the local
              server as `postgres`); the floor is unchanged. PostgreSQL's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import itertools
import json
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _floor import BARE_ROUTES, floor_server
from _load import (
    SERVER_CPU,
    Run,
    Timing,
    cpu_seconds,
    figures,
    lua_string,
    pin_to_load_core,
    show,
    side_by_side,
    wrk,
)
from _server import database, free_port, lag_file, served

from portal.core.contract import Choice, Field, FormDraft  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402

HOST = "127.0.0.1"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
BOUNDARY = "benchmarkboundary7MA4YWxkTrZu0gW"
CONNECTIONS = 16
# A submission's fields; @N@ is the submission's number, @R@ its requester (one of 500) and
# @Q@ a quantity. Python fills them in for its own loads, wrk's Lua script for the API's.
FIELDS = {
    "name": "Requester @R@",
    "email": "requester@R@@example.com",
    "subject": "Printer number @N@ does not print",
    "description": "It stopped this morning.\nThe light blinks orange.",
    "priority": "normal",
    "order_ref": "A-@N@",
    "quantity": "@Q@",
    "product": "sw",
}
MARKERS = re.compile(r"(@[NRQ]@)")
LUA_MARKERS = {"@N@": "n", "@R@": "(n % 500)", "@Q@": "(n % 7 + 1)"}


def values(n: int) -> dict[str, str]:
    numbers = {"@N@": str(n), "@R@": str(n % 500), "@Q@": str(n % 7 + 1)}
    return {k: MARKERS.sub(lambda m: numbers[m.group(1)], v) for k, v in FIELDS.items()}


def new_run() -> str:
    """A prefix no idempotency key has had: each load's keys are its prefix and a counter."""
    return "b" + secrets.token_hex(6)


def api_lua(path: str, form_token: str) -> str:
    """A wrk script POSTing JSON submissions to `path`, each with a key never sent before."""
    payload = json.dumps(FIELDS | {"form_token": form_token, "idempotency_key": new_run() + "-@N@"})
    parts = [
        LUA_MARKERS[piece] if MARKERS.fullmatch(piece) else lua_string(piece)
        for piece in MARKERS.split(payload)
        if piece
    ]
    return f"""
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", {lua_string(path)}, nil, {" .. ".join(parts)})
end
"""


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


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
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
    setup: Callable[..., Awaitable[Any]],
    make: Callable[..., bytes],
    expect: int,
) -> tuple[int, float]:
    """(answers, seconds) of `make(n, state)` from keep-alive connections, each after `setup`."""
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
    return done, time.monotonic() - started


async def count_tickets(url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT count(*) FROM tickets"))).scalar_one()
    finally:
        await engine.dispose()


async def seed(url: str) -> int:
    """A tenant on HOST with raised rate limits and a three-field form; the form's id."""
    core = EmbeddedCore(url)
    await core.start()
    try:
        tenant = await core.tenants.create_tenant("bench", "Bench", domains=(HOST,))
        await core.tenants.update_tenant_settings(
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
        draft = FormDraft("Support", fields=fields)
        return (await core.forms.save_form(tenant.id, draft)).id
    finally:
        await core.close()


async def python_loads(port: int, pid: int, form_id: int, seconds: float) -> list[Any]:
    """The page form, with and without an upload, and API retries: (name, value, unit) rows."""
    api_path = f"/api/forms/{form_id}"
    page_path = f"/forms/{form_id}"

    async def api_setup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        status, _, body = await http(reader, writer, request("GET", api_path))
        assert status == 200, body
        return json.loads(body)["form_token"]

    def api_make(n: int, token: str, key: str) -> bytes:
        payload = values(n) | {"form_token": token, "idempotency_key": key}
        return request(
            "POST",
            api_path + "/submissions",
            json.dumps(payload).encode(),
            {"Content-Type": "application/json"},
        )

    async def page_setup(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, dict[str, str]]:
        status, head, body = await http(reader, writer, request("GET", page_path))
        assert status == 200, body
        cookie = re.search(rb"set-cookie: (portal_form=[^;]+)", head, re.I)
        assert cookie, head
        tokens = {k: html.unescape(v) for k, v in HIDDEN_RE.findall(body.decode())}
        return cookie.group(1).decode(), tokens

    page_run, upload_run, retry_run = new_run(), new_run(), new_run()

    def page_make(n: int, state: tuple[str, dict[str, str]]) -> bytes:
        cookie, tokens = state
        fields = tokens | values(n) | {"idempotency_key": f"{page_run}-{n}"}
        return request(
            "POST",
            page_path,
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
        )

    attachment = b"log line\n" * 228  # about 2 KB

    def upload_make(n: int, state: tuple[str, dict[str, str]]) -> bytes:
        cookie, tokens = state
        fields = tokens | values(n) | {"idempotency_key": f"{upload_run}-{n}"}
        body = multipart(fields, f"log-{n}.txt", attachment + str(n).encode())
        return request(
            "POST",
            page_path,
            body,
            {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Cookie": cookie},
        )

    def retry_make(n: int, token: str) -> bytes:
        # The first request for each of the 100 keys makes its ticket; every later one retries.
        return api_make(n % 100, token, f"{retry_run}-{n % 100}")

    rows: list[Any] = []
    loads: list[tuple[str, Callable[..., Awaitable[Any]], Callable[..., bytes], int]] = [
        ("submissions_page", page_setup, page_make, 303),
        ("submissions_upload", page_setup, upload_make, 303),
        ("duplicate_retries", api_setup, retry_make, 201),
    ]
    for name, setup, make, expect in loads:
        before = cpu_seconds(pid)
        done, elapsed = await load(port, seconds, CONNECTIONS, setup, make, expect)
        cpu_ms = 1000 * (cpu_seconds(pid) - before) / max(done, 1)
        rows += [(f"{name}_rps", done / elapsed, "req/s"), (f"{name}_cpu_ms", cpu_ms, "ms/req")]
    return rows


def form_token(port: int, form_id: int) -> str:
    """A form token for `form_id`, as the API hands one to a page showing the form."""
    connection = HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", f"/api/forms/{form_id}", headers={"Host": HOST})
        return json.loads(connection.getresponse().read())["form_token"]
    finally:
        connection.close()


def measure(timing: Timing, postgres: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), postgres) as url:
        form_id = asyncio.run(seed(url))
        port, floor_port = free_port(), free_port()
        floor_lag = Path(tmp) / "floor-lag.txt"  # the floor's watch: the machine's own stalls
        with (
            served(Path(tmp), port, cpu=SERVER_CPU, database_url=url) as ours,
            floor_server(BARE_ROUTES, floor_port, cpu=SERVER_CPU, lag=floor_lag) as floor,
        ):
            token = form_token(port, form_id)
            headers = {"Content-Type": "application/json"}
            path = f"/api/forms/{form_id}/submissions"
            runs: list[Run] = []

            # A new script per run: each has its own key prefix, so no key is ever reused.
            def ours_run(seconds: float) -> Run:
                lua = api_lua(path, token)
                lag = lag_file(Path(tmp))
                runs.append(wrk(port, ours.pid, seconds, lua=lua, headers=headers, lag_file=lag))
                return runs[-1]

            def floor_run(seconds: float) -> Run:
                lua = api_lua("/insert", token)
                return wrk(
                    floor_port, floor.pid, seconds, lua=lua, headers=headers, lag_file=floor_lag
                )

            api, theirs = side_by_side(ours_run, floor_run, timing)
            # wrk does not count answers still in flight when it stops, so a few more tickets
            # than answers is normal; fewer would mean some answers were retries.
            made, answered = asyncio.run(count_tickets(url)), sum(run.requests for run in runs)
            print(f"# API: {answered} answers, {made} new tickets", file=sys.stderr)
            if made < answered:
                raise RuntimeError("some API answers made no ticket: keys were reused")
            show(figures("submissions_api", api, theirs))
            log = Path(tmp) / "portal.db-wal"
            if log.exists():
                show([("submissions_api_log_mb", log.stat().st_size / 2**20, "MB")])
            show(asyncio.run(python_loads(port, ours.pid, form_id, timing.run)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, under a minute")
    parser.add_argument("--postgres", action="store_true", help="our core on PostgreSQL")
    args = parser.parse_args()
    pin_to_load_core()
    timing = Timing(warm=1, run=4) if args.quick else Timing(warm=2, run=15)
    measure(timing, args.postgres)


if __name__ == "__main__":
    main()
