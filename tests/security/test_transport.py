"""Rows 1, 3, 4, 10, 11, 15 and 16 of the attack run: limits enforced while reading, at the server.

Each test floods a real `portal serve` the way the attack did and checks the safe outcome: the
status or close code, nothing stored, and the server's memory close to where it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from portal.core.contract import FormDraft
from tests.conftest import Inbox
from tests.messenger.conftest import open_ws
from tests.security.conftest import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    SECRET,
    Served,
    fresh_ip,
    start_portal,
    stop_portal,
)

MB = 1024 * 1024
# The floods below send 15 MB to 400 MB each; the server may grow by its caps, not by the floods.
GROWTH_ALLOWED = 50 * MB


async def chunked_post(
    served: Served,
    path: str,
    total: int,
    *,
    slug: str = "acme",
    headers: dict[str, str] | None = None,
    prefix: bytes = b"",
) -> tuple[int, int]:
    """POST up to `total` bytes with chunked encoding until the server answers or closes.

    Returns (status, bytes sent); status 0 when the server closed without an answer.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    head = {
        "Host": served.host(slug),
        "Transfer-Encoding": "chunked",
        "X-Forwarded-For": fresh_ip(),
        **(headers or {}),
    }
    writer.write(
        f"POST {path} HTTP/1.1\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
        + b"\r\n"
    )
    answer = asyncio.create_task(reader.read(65536))
    chunk = 256 * 1024
    block = b"%x\r\n" % chunk + b"a" * chunk + b"\r\n"
    sent = 0
    with contextlib.suppress(ConnectionError):
        if prefix:
            writer.write(b"%x\r\n" % len(prefix) + prefix + b"\r\n")
        while sent < total and not answer.done():
            writer.write(block)
            await writer.drain()
            sent += chunk
            # drain() does not yield while the kernel takes the bytes: without this the answer
            # could sit unread while the loop writes on, and `sent` would time the client.
            await asyncio.sleep(0)
        if not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    data = await asyncio.wait_for(answer, 30)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return (int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0), sent


async def visitor_token(served: Served) -> str:
    async with served.client() as client:
        answer = await client.post("/messenger/token", json={})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def upload_prefix(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()


# ------------------------------------------------------------------ row 1: big frames
async def test_big_websocket_frames_close_the_socket_before_they_are_read(served: Served) -> None:
    idle = served.rss()
    sockets = []
    for _ in range(30):
        sockets.append(
            await connect(
                f"ws://{served.host()}:{served.port}/messenger/ws",
                host="127.0.0.1",
                port=served.port,
                additional_headers={"X-Forwarded-For": fresh_ip()},
                max_size=None,
            )
        )

    async def send_big(ws) -> int | None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(ConnectionClosed):
            await ws.send("x" * (15 * MB))
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
        return ws.close_code

    codes = await asyncio.gather(*(send_big(ws) for ws in sockets))
    assert codes == [1009] * 30  # "message too big", from the frame's header alone
    assert served.rss() - idle < GROWTH_ALLOWED

    # An unrelated chat still works afterwards.
    ws = await open_ws(served.url, "/messenger/ws", host=served.host())
    await ws.send("hello", token=await visitor_token(served))
    await ws.expect("ready")
    await ws.send("ping")
    await ws.expect("pong")
    await ws.close()


# ------------------------------------------------------------------ row 3: chunked bodies
@pytest.mark.parametrize("path", ["/messenger/token", "/api/forms/1/deflections"])
async def test_chunked_bodies_are_cut_off_at_the_cap(served: Served, path: str) -> None:
    idle = served.rss()
    results = await asyncio.gather(
        *(chunked_post(served, path, 100 * MB, headers={"Content-Type": "application/json"})
          for _ in range(3))
    )  # fmt: skip
    for status, sent in results:
        assert status == 413
        assert sent < 20 * MB  # the server stopped reading long before the end
    assert served.rss() - idle < GROWTH_ALLOWED


async def test_a_declared_length_over_the_cap_is_refused_unread(served: Served) -> None:
    async with served.client() as client:
        answer = await client.post(
            "/messenger/token",
            content=b"{}" + b" " * (200 * 1024),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 413
    assert "at most 64 KB" in answer.json()["error"]


# ------------------------------------------------------------------ row 4: chunked uploads
async def test_chunked_chat_upload_stops_at_the_tenant_limit(served: Served) -> None:
    token = await visitor_token(served)
    idle = served.rss()
    status, sent = await chunked_post(
        served,
        "/messenger/uploads",
        300 * MB,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/form-data; boundary=xyz",
        },
        prefix=upload_prefix("xyz"),
    )
    assert status == 413
    assert sent < 60 * MB
    assert served.rss() - idle < GROWTH_ALLOWED
    stored = served.data / "attachments"
    assert not stored.exists() or not any(p.is_file() for p in stored.rglob("*"))


async def test_chunked_form_submission_stops_at_the_tenant_limit(
    served: Served, served_core
) -> None:
    form = await served_core.forms.save_form(served.tenants["acme"].id, FormDraft("Contact us"))
    idle = served.rss()
    status, sent = await chunked_post(
        served,
        f"/api/forms/{form.id}/submissions",
        400 * MB,
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        prefix=upload_prefix("xyz"),
    )
    assert status == 413
    assert sent < 120 * MB  # the cap is every file the tenant allows, at its largest
    assert served.rss() - idle < GROWTH_ALLOWED


# ------------------------------------------------------------------ row 10: nested JSON
async def test_deeply_nested_json_is_a_clear_400(served: Served, served_core) -> None:
    form = await served_core.forms.save_form(served.tenants["acme"].id, FormDraft("Nested"))
    async with served.client() as client:
        answer = await client.post(
            f"/api/forms/{form.id}/submissions",
            content="[" * 4000 + "]" * 4000,
            headers={"Content-Type": "application/json"},
        )
        token = await client.post(
            "/messenger/token",
            content="[" * 4000 + "]" * 4000,
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 400, served.log_text()[-3000:]
    assert token.status_code == 400, token.text
    assert "Traceback" not in served.log_text()


async def test_deeply_nested_frames_are_bad_frames_that_close_the_socket(served: Served) -> None:
    ws = await open_ws(served.url, "/messenger/ws", host=served.host())
    await ws.send("hello", token=await visitor_token(served))
    await ws.expect("ready")
    for _ in range(10):
        await ws.send_raw('{"type": "ping", "x": ' + "[" * 4000 + "]" * 4000 + "}")
        error = await ws.expect("error")
        assert error["code"] == "bad_json"
    assert await ws.wait_closed() == 4400  # each counted as a bad frame
    assert "Traceback" not in served.log_text()


# ------------------------------------------------------------------ row 11: slow headers
async def test_connections_that_never_finish_their_headers_are_closed(served: Served) -> None:
    async def half_request(payload: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(payload)
        await writer.drain()
        # The server closes it: reading reaches the end (waiting for that is the point).
        data = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S * 3)
        writer.close()
        return data

    answers = await asyncio.gather(
        *(half_request(b"") for _ in range(20)),
        *(half_request(f"GET / HTTP/1.1\r\nHost: {served.host()}\r\nX-a: ".encode())
          for _ in range(20)),
    )  # fmt: skip
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers)
    async with served.client() as client:
        assert (await client.get("/healthz")).status_code == 200


async def body_in_pieces(
    served: Served, path: str, pieces: list[bytes], pause: float, *, length: int
) -> tuple[bytes, bytes, bool]:
    """POST `pieces` of a JSON body that declares `length` bytes, `pause` seconds apart; the
    answer's head and body, and whether the server closed the connection after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {served.host()}\r\nX-Forwarded-For: {fresh_ip()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
    )
    for piece in pieces:
        await asyncio.sleep(pause)  # a slow client's pace
        writer.write(piece)
        await writer.drain()
    wait = BODY_TIMEOUT_S * 5
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
    size = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    body = await asyncio.wait_for(reader.readexactly(size), wait)
    closed = head.lower().find(b"connection: close") >= 0 and await reader.read() == b""
    writer.close()
    return head, body, closed


async def test_a_body_that_stops_arriving_is_answered_408_and_cut_off(
    served: Served, served_core
) -> None:
    form = await served_core.forms.save_form(served.tenants["acme"].id, FormDraft("Stalled"))
    logged = len(served.log_text())
    path = f"/api/forms/{form.id}/submissions"
    head, body, closed = await body_in_pieces(served, path, [b'{"name": "Ada"'], 0, length=1000)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert closed
    assert json.loads(body) == {"error": "The request body stopped arriving; send it again."}
    # The app, still reading, heard that the client was gone: no error, no ticket.
    assert "Traceback" not in served.log_text()[logged:]
    assert (await served_core.tickets.list_tickets(served.tenants["acme"].id)).total == 0


async def test_a_slow_body_that_keeps_coming_is_not_cut_off(served: Served, served_core) -> None:
    """The deadline is on silence, not on the whole body: pieces half the timeout apart, for
    longer than the timeout in all, are read to the end and answered."""
    form = await served_core.forms.save_form(served.tenants["acme"].id, FormDraft("Slow"))
    body = json.dumps({"name": "Ada", "email": "ada@example.com", "pad": "x" * 60}).encode()
    pieces = [body[i : i + 20] for i in range(0, len(body), 20)]
    assert len(pieces) * BODY_TIMEOUT_S / 2 > BODY_TIMEOUT_S * 2
    path = f"/api/forms/{form.id}/submissions"
    head, answer, closed = await body_in_pieces(
        served, path, pieces, BODY_TIMEOUT_S / 2, length=len(body)
    )
    # Read whole, then refused for its missing form token: the app's answer, not the server's.
    assert head.startswith(b"HTTP/1.1 403"), head
    assert b"form_token" in answer and not closed


async def test_a_client_leaving_in_the_middle_of_its_body_leaves_no_error(
    served: Served, served_core
) -> None:
    form = await served_core.forms.save_form(served.tenants["acme"].id, FormDraft("Left"))
    logged = len(served.log_text())
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST /api/forms/{form.id}/submissions HTTP/1.1\r\nHost: {served.host()}\r\n"
        f'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"name": '.encode()
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    async with served.client() as client:  # the server goes on, and has logged no error
        assert (await client.get("/healthz")).status_code == 200
    assert "Traceback" not in served.log_text()[logged:]


async def test_endless_headers_are_refused(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(f"GET / HTTP/1.1\r\nHost: {served.host()}\r\n".encode())
    with contextlib.suppress(ConnectionError):
        for i in range(2000):
            writer.write(f"X-Filler-{i}: {'a' * 100}\r\n".encode())
            await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), 30)
    except ConnectionError:  # closed with our headers unread: the answer may be lost
        data = b""
    writer.close()
    assert data == b"" or data.startswith(b"HTTP/1.1 431")
    assert writer.transport.is_closing()
    async with served.client() as client:
        assert (await client.get("/healthz")).status_code == 200


# ------------------------------------------------------------------ row 15: development mail
async def test_without_smtp_development_mail_is_written_to_the_log(tmp_path, smtp: Inbox) -> None:
    served = await asyncio.to_thread(start_portal, tmp_path / "dev", smtp, PORTAL_SMTP_HOST="")
    try:
        core = await served.core()
        try:
            from portal.core.contract import TicketDraft

            tenant = served.tenants["acme"]
            await core.tickets.create_ticket(
                tenant.id, TicketDraft("Hi", "Hello", "dev@example.com"), "dev-key"
            )
        finally:
            await core.close()
        async with served.client() as client:
            answer = await client.post("/portal/sign-in", data={"email": "dev@example.com"})
        assert answer.status_code == 200
        deadline = asyncio.get_running_loop().time() + 10
        while "/portal/sign-in/" not in served.log_text():
            assert asyncio.get_running_loop().time() < deadline, served.log_text()
            await asyncio.sleep(0.05)
        assert "dev@example.com" in served.log_text()
        assert smtp.messages == []
    finally:
        await asyncio.to_thread(stop_portal, served)


# ------------------------------------------------------------------ row 16: production
def _serve_production(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {
        **os.environ,
        "PORTAL_ENV": "production",
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_BASE_DOMAIN": "help.example.com",
        "PORTAL_DATA_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", "serve"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_plain_http_links(tmp_path) -> None:
    result = _serve_production(tmp_path, PORTAL_PUBLIC_SCHEME="http")
    assert result.returncode == 2
    assert "PORTAL_PUBLIC_SCHEME must be `https` in production" in result.stderr


async def test_production_sends_hsts_and_believes_only_trusted_proxies(
    tmp_path, smtp: Inbox
) -> None:
    served = await asyncio.to_thread(
        start_portal,
        tmp_path / "prod",
        smtp,
        PORTAL_ENV="production",
        PORTAL_PUBLIC_SCHEME="https",
        PORTAL_TRUSTED_PROXIES="192.0.2.1",  # not us: our X-Forwarded-For must be ignored
    )
    try:
        async with served.client() as client:
            page = await client.get("/portal/sign-in")
            assert page.headers["strict-transport-security"].startswith("max-age=")
            # The sign-in limit is 30 an address; forged addresses must all count as ours.
            statuses = []
            for i in range(31):
                answer = await client.post(
                    "/portal/sign-in",
                    data={"email": f"p{i}@example.com"},
                    headers={"x-forwarded-for": fresh_ip()},
                )
                statuses.append(answer.status_code)
        assert statuses[:30] == [200] * 30
        assert statuses[30] == 429
    finally:
        await asyncio.to_thread(stop_portal, served)


async def test_trusted_proxies_name_the_client(served: Served) -> None:
    # `served` trusts loopback (the default): 31 addresses behind it are 31 clients.
    statuses = []
    for i in range(31):
        async with served.client() as client:
            answer = await client.post("/portal/sign-in", data={"email": f"t{i}@example.com"})
            statuses.append(answer.status_code)
    assert statuses == [200] * 31
