"""Two `portal serve` processes sharing PostgreSQL and Redis: a visitor on one, an agent on the
other, and a Redis restart in the middle of their conversation."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from portal.core.embedded.core import EmbeddedCore
from portal.security import hash_password
from tests.conftest import BASE_DOMAIN, TEST_HASH_COST, Server, postgres_database, service_missing
from tests.messenger.conftest import AGENT_EMAIL, AGENT_PASSWORD, Chat, client_id
from tests.processes import free_port
from tests.redis_server import RedisServer, redis_server_available

SECRET = "test-secret-key-that-is-long-enough-0123456789"


@contextmanager
def serve(*folders: Path, database_url: str, redis_url: str) -> Iterator[list[str]]:
    """`portal serve` in a process of its own per folder, started together; their base URLs."""
    started = []
    try:
        for data in folders:
            port = free_port()
            env = {
                **os.environ,
                "PORTAL_DATA_DIR": str(data),
                "PORTAL_DATABASE_URL": database_url,
                "PORTAL_REDIS_URL": redis_url,
                "PORTAL_BASE_DOMAIN": BASE_DOMAIN,
                "PORTAL_SECRET_KEY": SECRET,
                "PORTAL_PORT": str(port),
            }
            log = (data / "server.log").open("wb")
            command = [sys.executable, "-m", "portal.cli", "serve"]
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
            started.append((data, port, process, log))
        deadline = time.monotonic() + 30
        for data, port, process, _log in started:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((data / "server.log").read_text()) from None
                    time.sleep(0.05)
        yield [f"http://127.0.0.1:{port}" for _data, port, _process, _log in started]
    finally:
        for _data, _port, process, _log in started:
            process.terminate()
        for _data, _port, process, log in started:
            process.wait(timeout=10)
            log.close()


@dataclass
class Cluster:
    chat: Chat
    redis: RedisServer
    a: str  # base URL of process A (the visitor's)
    b: str  # base URL of process B (the agent's)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    if not redis_server_available():
        service_missing("redis-server is not installed")
    redis = RedisServer(tmp_path)
    redis.start()
    async with postgres_database() as database_url:
        core = EmbeddedCore(database_url)
        await core.start()  # migrates before either process starts
        tenant = await core.tenants.create_tenant("acme", "Acme")
        await core.tenants.create_agent(
            tenant.id,
            AGENT_EMAIL,
            "Ada Agent",
            hash_password(AGENT_PASSWORD, cost=TEST_HASH_COST),
            "agent",
        )
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        try:
            folders = (tmp_path / "a", tmp_path / "b")
            with serve(*folders, database_url=database_url, redis_url=redis.url) as (a, b):
                chat = Chat(Server(url=a, core=core), tenant)
                yield Cluster(chat, redis, a, b)
                await chat.close()
        finally:
            await core.close()
            redis.stop()


async def test_visitor_and_agent_on_different_processes_talk_normally(cluster: Cluster):
    chat = cluster.chat
    agent, _ = await chat.agent(base_url=cluster.b)
    visitor, _ = await chat.visitor(base_url=cluster.a)
    conversation_id = await chat.start(visitor, "Hello from process A")

    # The agent's presence (set on B) reached A: the visitor is not told nobody is there.
    inbox = await agent.expect("inbox")
    assert [c["id"] for c in inbox["conversations"]] == [conversation_id]
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    assert (await agent.expect("message"))["message"]["body"] == "Hello from process A"

    await agent.send("typing", conversation_id=conversation_id, typing=True)
    assert (await visitor.expect("typing"))["author_name"] == "Ada Agent"
    await agent.send("message", conversation_id=conversation_id, client_id="b1", body="Hi from B")
    assert (await visitor.expect("message", timeout=5))["message"]["body"] in (
        "Hello from process A",
        "Hi from B",
    )
    await _until_bodies(visitor, conversation_id, ["Hello from process A", "Hi from B"])
    await visitor.send("message", conversation_id=conversation_id, client_id="a2", body="Thanks!")
    await _until_bodies(agent, conversation_id, ["Hello from process A", "Hi from B", "Thanks!"])
    assert not [f for f in visitor.frames if f["type"] == "availability"]


async def test_a_redis_restart_mid_conversation_loses_nothing(cluster: Cluster):
    chat = cluster.chat
    agent, _ = await chat.agent(base_url=cluster.b)
    visitor, _ = await chat.visitor(base_url=cluster.a)
    conversation_id = await chat.start(visitor, "before the restart")
    await agent.send("watch", conversation_id=conversation_id, last_id=0)
    await agent.expect("caught_up")

    cluster.redis.stop()
    # Written while Redis is down: stored by B's core, but no process can tell A about it.
    await agent.send(
        "message", conversation_id=conversation_id, client_id=client_id(), body="during"
    )
    await agent.expect("ack")
    cluster.redis.start()  # the same port, empty, as after a crash

    # Nobody restarts anything: A resubscribes and catches up from the core.
    await _until_bodies(visitor, conversation_id, ["before the restart", "during"], timeout=15)
    await visitor.send("message", conversation_id=conversation_id, client_id="v9", body="after")
    await _until_bodies(agent, conversation_id, ["before the restart", "during", "after"], 15)
    await agent.send("message", conversation_id=conversation_id, client_id=client_id(), body="ok!")
    await _until_bodies(
        visitor, conversation_id, ["before the restart", "during", "after", "ok!"], timeout=15
    )


async def _until_bodies(ws, conversation_id: int, bodies: list[str], timeout: float = 5.0) -> None:
    """Wait until the socket has received exactly these messages, in this order, once each."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = [m["body"] for m in ws.messages(conversation_id)]
        if got == bodies:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {bodies}, got {got}")
        await asyncio.sleep(0.05)


async def test_an_agent_reply_on_one_process_reaches_the_customers_live_page_on_another(
    cluster: Cluster,
):
    from portal.core.contract import TicketDraft
    from tests.agent.test_console import ticket_form
    from tests.conftest import customer_cookie

    chat = cluster.chat
    core = chat.server.core
    ticket = await core.tickets.create_ticket(
        chat.tenant.id, TicketDraft("Printer on fire", "Help!", "kim@example.com"), "t-1"
    )
    customer = await core.customers.find_customer(chat.tenant.id, "kim@example.com")
    cookie = await customer_cookie(core, SECRET, customer)
    agent_cookie = await chat.agent_cookie()

    host = {"host": f"acme.{BASE_DOMAIN}"}
    async with (
        httpx.AsyncClient(base_url=cluster.a, headers={**host, "cookie": cookie}) as on_a,
        httpx.AsyncClient(base_url=cluster.b, headers={**host, "cookie": agent_cookie}) as on_b,
        on_a.stream("GET", f"/portal/tickets/{ticket.id}/events", timeout=15) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        async for line in lines:
            if line == ": connected":
                break
        # B's core tells only B; the event relay over Redis tells A.
        csrf, key = await ticket_form(on_b, ticket)
        posted = await on_b.post(
            f"/agent/tickets/{ticket.id}/reply",
            data={"csrf_token": csrf, "idempotency_key": key, "body": "On it!", "action": "reply"},
        )
        assert posted.status_code == 303, posted.text
        async with asyncio.timeout(10):
            async for line in lines:
                if line.startswith("data:") and "On it!" in line:
                    break
