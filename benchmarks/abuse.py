"""The server's memory under the floods of the attack run (issue 8), against its idle memory.

The server is `python -m portal.cli serve` (the demo tenant on 127.0.0.1) in a subprocess.
Each flood runs alone; before it the server's peak-RSS mark is reset (`/proc/PID/clear_refs`),
after it VmHWM is the peak reached during the flood. Floods, as the attack sent them:

  big_frames       30 sockets (10 --quick) each send one 15 MB frame to /messenger/ws before hello
  chunked_bodies   3 chunked 100 MB bodies each to POST /messenger/token and to form deflections
  chunked_uploads  3 chunked 300 MB chat uploads and 3 chunked 400 MB form submissions
  nested_json      400 bodies (100 --quick) of `[` nested 4,000 deep to the form API, and as
                   many such frames on chat sockets

Prints, per flood NAME:
  NAME_peak_mb      the server's peak VmRSS during the flood
  NAME_growth_mb    peak - idle (the target: under 50 MB for every flood)
  NAME_refused      requests or sockets refused (413, 400, 429, close 1009 or 4400)
and idle_mb before the first flood. The floor is a bare Starlette app on the same uvicorn
settings whose POST route answers 413 without reading a byte; it gets the same floods, and
NAME_peak_vs_floor is our peak / its peak.
Run: .venv/bin/python benchmarks/abuse.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _floor import floor_server  # noqa: E402
from _server import child_env, free_port, python_command, served  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

MB = 1024 * 1024
HOST = "127.0.0.1"
# The web form the form floods go to: the demo's first, or one seed() makes.
FORM = {"id": 1}


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


async def chunked_post(port: int, path: str, total: int, headers: dict[str, str]) -> int:
    """Send up to `total` bytes chunked until the server answers; its status (0: closed)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = {"Host": HOST, "Transfer-Encoding": "chunked", **headers}
    writer.write(
        f"POST {path} HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
        + b"\r\n"
    )
    prefix = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        if "multipart" in headers.get("Content-Type", "")
        else b""
    )
    answer = asyncio.create_task(reader.read(4096))
    block = b"%x\r\n" % (256 * 1024) + b"a" * (256 * 1024) + b"\r\n"
    sent = 0
    with contextlib.suppress(ConnectionError):
        if prefix:
            writer.write(b"%x\r\n" % len(prefix) + prefix + b"\r\n")
        while sent < total and not answer.done():
            writer.write(block)
            await writer.drain()
            sent += 256 * 1024
    try:
        data = await asyncio.wait_for(answer, 60)
    except (ConnectionError, TimeoutError):
        data = b""
    writer.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


async def big_frame(port: int) -> bool:
    """One 15 MB frame before hello; True when the server closed the socket (1009)."""
    try:
        ws = await connect(f"ws://{HOST}:{port}/messenger/ws", max_size=None, open_timeout=30)
    except Exception:
        return True  # refused outright
    with contextlib.suppress(ConnectionClosed):
        await ws.send("x" * (15 * MB))
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.recv()
    return ws.close_code in (1009, 1006, 4403, 1008)


async def request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection: (status, body)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    try:
        data = await reader.read(-1)
    except ConnectionError:
        data = b""
    writer.close()
    if not data.startswith(b"HTTP/1.1 "):
        return 0, b""
    return int(data.split(b" ", 2)[1]), data.split(b"\r\n\r\n", 1)[-1]


async def visitor_token(port: int) -> str:
    status, body = await request(port, "POST", "/messenger/token", b"{}")
    return json.loads(body)["token"] if status == 200 else ""  # the floor has no tokens


async def nested_request(port: int) -> int:
    path = f"/api/forms/{FORM['id']}/submissions"
    return (await request(port, "POST", path, b"[" * 4000 + b"]" * 4000))[0]


async def nested_frames(port: int, token: str, count: int) -> int:
    """`count` deeply nested frames on sockets; how many were refused (error frame or close)."""
    refused = 0
    while refused < count:
        try:
            ws = await connect(f"ws://{HOST}:{port}/messenger/ws", open_timeout=30)
        except Exception:
            return refused
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "hello", "token": token}))
            await ws.recv()
            for _ in range(min(9, count - refused)):  # the 10th bad frame closes the socket
                await ws.send('{"type": "ping", "x": ' + "[" * 4000 + "]" * 4000 + "}")
                if '"error"' in str(await ws.recv()):
                    refused += 1
        await ws.close()
        if ws.close_code not in (1000, None):
            return refused  # the floor: no chat here
    return refused


async def seed(data: Path) -> None:
    """A web form for the demo tenant (unless the demo has one), so form floods reach a form."""
    from portal.core.contract import FormDraft
    from portal.core.embedded.core import EmbeddedCore

    core = EmbeddedCore(f"sqlite+aiosqlite:///{(data / 'portal.db').resolve()}")
    await core.start()
    try:
        tenant = (await core.tenants.list_tenants())[0]
        forms = await core.forms.list_forms(tenant.id)
        FORM["id"] = (
            forms[0].id
            if forms
            else (await core.forms.save_form(tenant.id, FormDraft("Contact us"))).id
        )
    finally:
        await core.close()


def floods(port: int, quick: bool) -> dict[str, Callable[[], Awaitable[int]]]:
    sockets = 10 if quick else 30
    nested = 100 if quick else 400

    async def big_frames() -> int:
        return sum(await asyncio.gather(*(big_frame(port) for _ in range(sockets))))

    async def chunked_bodies() -> int:
        json_headers = {"Content-Type": "application/json"}
        statuses = await asyncio.gather(
            *(chunked_post(port, "/messenger/token", 100 * MB, json_headers) for _ in range(3)),
            *(
                chunked_post(port, f"/api/forms/{FORM['id']}/deflections", 100 * MB, json_headers)
                for _ in range(3)
            ),
        )
        return sum(s in (413, 0) for s in statuses)

    async def chunked_uploads() -> int:
        token = await visitor_token(port)
        multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
        statuses = await asyncio.gather(
            *(
                chunked_post(
                    port,
                    "/messenger/uploads",
                    300 * MB,
                    {**multipart, "Authorization": f"Bearer {token}"},
                )
                for _ in range(3)
            ),
            *(chunked_post(port, f"/forms/{FORM['id']}", 400 * MB, multipart) for _ in range(3)),
        )
        return sum(s in (413, 0) for s in statuses)

    async def nested_json() -> int:
        token = await visitor_token(port)
        statuses = []
        for start in range(0, nested, 20):
            statuses += await asyncio.gather(
                *(nested_request(port) for _ in range(min(20, nested - start)))
            )
        refused = sum(s in (400, 413, 429) for s in statuses)
        return refused + (await nested_frames(port, token, nested) if token else 0)

    return {
        "big_frames": big_frames,
        "chunked_bodies": chunked_bodies,
        "chunked_uploads": chunked_uploads,
        "nested_json": nested_json,
    }


async def run_floods(pid: int, port: int, quick: bool) -> dict[str, tuple[float, int]]:
    """(peak MB, refused) per flood."""
    results = {}
    for name, flood in floods(port, quick).items():
        await asyncio.sleep(0.5)  # let the previous flood's connections close
        reset_peak(pid)
        refused = await flood()
        results[name] = (vm(pid, "VmHWM"), refused)
    return results


FLOOR_ROUTES = """
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute


async def refuse(request):
    return PlainTextResponse("too large", status_code=413)


async def socket(websocket):
    await websocket.accept()
    await websocket.receive_text()


routes = [
    Route("/{path:path}", refuse, methods=["GET", "POST"]),
    WebSocketRoute("/{p:path}", socket),
]
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = child_env(PORTAL_DATA_DIR=str(data))
        subprocess.run(
            python_command("-m", "portal.cli", "demo"), env=env, check=True, capture_output=True
        )
        asyncio.run(seed(data))
        port = free_port()
        with served(data, port) as server:
            time.sleep(0.5)
            idle = vm(server.pid, "VmRSS")
            ours = asyncio.run(run_floods(server.pid, port, args.quick))

    floor_port = free_port()
    with floor_server(FLOOR_ROUTES, floor_port) as floor:
        time.sleep(0.5)
        floor_idle = vm(floor.pid, "VmRSS")
        theirs = asyncio.run(run_floods(floor.pid, floor_port, args.quick))

    print(f"idle_mb: {idle:.1f} MB")
    print(f"floor_idle_mb: {floor_idle:.1f} MB")
    for name, (peak, refused) in ours.items():
        floor_peak = theirs[name][0]
        print(f"{name}_peak_mb: {peak:.1f} MB")
        print(f"{name}_growth_mb: {peak - idle:.1f} MB")
        print(f"{name}_refused: {refused} requests")
        print(f"{name}_floor_peak_mb: {floor_peak:.1f} MB")
        print(f"{name}_peak_vs_floor: {peak / floor_peak:.2f} ratio")


if __name__ == "__main__":
    main()
