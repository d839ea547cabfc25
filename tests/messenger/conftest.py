"""Messenger fixtures: real websocket clients, signed-in agents and visitors.

Sockets need a real server: tests that open them are marked `live_server`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from portal.core.contract import Tenant
from tests.agent.test_console import log_in
from tests.conftest import BASE_DOMAIN, TEST_HASH_COST, Server

HOST = f"acme.{BASE_DOMAIN}"
SAME_SITE = "same-site"  # open_ws: the Origin of a page of the tenant's own host
AGENT_EMAIL = "ada@acme.test"
AGENT_PASSWORD = "ada password 123"
_ids = itertools.count(1)


def client_id() -> str:
    return f"c{next(_ids)}"


@dataclass
class Ws:
    """A websocket client that reads frames in the background and finds the ones asked for."""

    conn: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None
    _cursor: int = 0

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                async with self._arrived:
                    self.frames.append(json.loads(raw))
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.conn.close_code
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, type: str, **frame: Any) -> None:
        await self.conn.send(json.dumps({"type": type, **frame}))

    async def send_raw(self, text: str) -> None:
        await self.conn.send(text)

    async def expect(self, type: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next frame (after the last one found) of `type` whose fields equal `match`."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._arrived:
            while True:
                for i in range(self._cursor, len(self.frames)):
                    frame = self.frames[i]
                    if frame.get("type") == type and all(
                        frame.get(k) == v for k, v in match.items()
                    ):
                        self._cursor = i + 1
                        return frame
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0 or self.closed.is_set():
                    seen = [f.get("type") for f in self.frames[self._cursor :]]
                    raise AssertionError(f"no {type} frame {match or ''}; after it came {seen}")
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    pass

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        """Every message frame received so far for one conversation, in arrival order."""
        return [
            f["message"]
            for f in self.frames
            if f.get("type") == "message" and f["message"]["conversation_id"] == conversation_id
        ]

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.conn.close()
        if self._reader is not None:
            await self._reader


async def open_ws(
    base_url: str,
    path: str,
    *,
    host: str = HOST,
    origin: str | None = SAME_SITE,
    cookie: str = "",
) -> Ws:
    headers = {"Cookie": cookie} if cookie else {}
    address = urlsplit(base_url)
    if origin == SAME_SITE:
        origin = f"http://{host}:{address.port}"
    # The URL names the tenant's host (the Host header); the socket goes to the test server.
    conn = await connect(
        f"ws://{host}:{address.port}{path}",
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=5,
        host=address.hostname,
        port=address.port,
    )
    ws = Ws(conn)
    ws.start()
    return ws


@dataclass
class Chat:
    """Actions on a running server: visitor tokens, visitor sockets, signed-in agent sockets."""

    server: Server
    tenant: Tenant
    sockets: list[Ws] = field(default_factory=list)

    async def token(self) -> str:
        async with self.server.client(HOST) as client:
            response = await client.post("/messenger/token", json={})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    async def visitor(
        self, token: str | None = None, *, conversation_id: int | None = None, last_id: int = 0,
        base_url: str | None = None, origin: str | None = SAME_SITE, cookie: str = "",
    ) -> tuple[Ws, dict[str, Any]]:  # fmt: skip
        """A visitor's socket after hello, and the `ready` frame."""
        ws = await open_ws(
            base_url or self.server.url, "/messenger/ws", origin=origin, cookie=cookie
        )
        self.sockets.append(ws)
        hello: dict[str, Any] = {"token": token or await self.token(), "last_id": last_id}
        if conversation_id is not None:
            hello["conversation_id"] = conversation_id
        await ws.send("hello", **hello)
        return ws, await ws.expect("ready")

    async def agent_cookie(self, email: str = AGENT_EMAIL, password: str = AGENT_PASSWORD) -> str:
        async with self.server.client(HOST) as client:
            response = await log_in(client, email, password)
            assert response.status_code == 303, response.text
            return "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    async def agent(
        self, cookie: str | None = None, *, base_url: str | None = None
    ) -> tuple[Ws, dict[str, Any]]:
        ws = await open_ws(
            base_url or self.server.url, "/agent/ws", cookie=cookie or await self.agent_cookie()
        )
        self.sockets.append(ws)
        await ws.send("hello")
        return ws, await ws.expect("ready")

    async def start(self, ws: Ws, body: str = "Hello, anyone there?", **extra: Any) -> int:
        """Start a conversation on a visitor socket; returns its id."""
        await ws.send("start", client_id=client_id(), body=body, **extra)
        started = await ws.expect("started")
        return started["conversation"]["id"]

    async def close(self) -> None:
        for ws in self.sockets:
            if not ws.closed.is_set():
                await ws.close()


@pytest.fixture
async def chat(server: Server) -> AsyncIterator[Chat]:
    from portal.security import hash_password

    tenant = await server.tenant()
    await server.core.tenants.create_agent(
        tenant.id,
        AGENT_EMAIL,
        "Ada Agent",
        hash_password(AGENT_PASSWORD, cost=TEST_HASH_COST),
        "agent",
    )
    the_chat = Chat(server, tenant)
    yield the_chat
    await the_chat.close()


@pytest.fixture
async def token_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client(HOST) as client:
        yield client
