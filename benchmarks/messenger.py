"""Messenger websockets on one uvicorn worker: idle connections held, visitor -> agent latency.

The server is `python -m portal.cli serve` in a subprocess on the embedded SQLite core; the
tenant (domain 127.0.0.1) and an agent are made through the core beforehand. Clients run in
other processes (websockets' asyncio client, offering per-message deflate as browsers do).

Idle connections, once with PORTAL_WS_COMPRESSION=0 and once with =1 (figures suffixed
`_nocompression` / `_compression`): visitor sockets (a signed visitor token, `hello`, `ready`)
are opened from several client processes up to 10,000 (2,000 with --quick), then every one is
sent a `ping` frame. Prints
  idle_connections_held            sockets that were open and answered `pong` at the end
  idle_connect_rate                sockets opened (handshake + hello + ready) per second
  server_rss_idle_mb               the server's VmRSS with them open
  server_memory_per_connection_kb  (VmRSS with them open - VmRSS before) / held

Latency (the server's default compression setting): 1,000 conversations (500 with --quick) are
made through the core beforehand, one per visitor; each visitor opens a socket (`hello`,
`ready`). One agent socket, signed in through /admin/login, `watch`es them, paced under the 10
frames/s a socket may send (so with --quick it watches only the first 50). The floor
(`_floor.BARE_ROUTES`: a bare Starlette websocket relay on the same uvicorn settings that stores
each message with one SQLite INSERT (committed), acks it and relays it to the agent socket, every
conversation; no watching, no inbox) is served beside ours with sockets of its own. Then the
visitors send at an aggregate 500/s, each body carrying its send time, in rounds of 2 s (1.5 s
with --quick), 6 rounds (4) on each server, ours and the floor in turns: on a shared machine
both meet the same moments. Prints, over every round of ours, then `floor_`-prefixed the same
  message_latency_p50_ms / _p99_ms  visitor `send` -> the agent's `message` frame
  messages_delivered                `message` frames the agent got (waiting up to 30 s after
                                    the last send), of those sent to conversations it watched
  ack_latency_p50_ms / _p99_ms      visitor `send` -> its `ack` (the message is stored)
  inbox_latency_p50_ms / _p99_ms    visitor `send` -> the first `inbox` frame showing it
                                    (every conversation: what the console's list sees)
  achieved_send_rate                messages sent / the time spent sending
  stored_rate                       `ack`s / the time from each round's first send to its last
                                    `ack`: what the server keeps up with when offered more
  server_cpu_busy                   the server's CPU time / wall time while sending
  server_cpu_per_message_ms         the server's CPU time / messages sent (all its threads,
                                    to the nanosecond: /proc/PID/task/*/schedstat)
  chat_loop_stall_ms                the event loop's longest stall from the first send to the
                                    agent's last frame (`portal.loopwatch`; the floor runs the
                                    same watch, so both pay for its wake-ups, and its stall
                                    is the machine's own)
  chat_loop_stall_off_cpu_ms        how long the server was off the CPU across that stall:
                                    near 0, its own work held the loop; near the stall's
                                    length, the machine did not run it
  chat_gc_pause_ms                  the longest garbage collection pause in that time
and
  cpu_per_message_vs_floor          ours / floor, server CPU time per message: the median of
                                    the rounds' ratios (each round's are on stderr)
The servers run on one core and every client process on the other.
Times are CLOCK_MONOTONIC read in the sending and the receiving process: on Linux it is one
clock for the whole machine (unlike wall time it never steps), and the agent runs in a process
of its own so that its reading is not delayed behind the visitors' frames.
Run: .venv/bin/python benchmarks/messenger.py [--quick] [--postgres] [--rounds N] [--seconds S]
     (-v: progress on stderr)
  --postgres  our core on a new PostgreSQL database (PORTAL_BENCH_PG_DSN, default the local
              server as `postgres`); the floor is unchanged. PostgreSQL's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import multiprocessing as mp
import random
import re
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _floor import BARE_ROUTES, floor_server
from _load import (
    SERVER_CPU,
    cpu_seconds,
    loop_stall,
    pin_to_load_core,
    show,
    stall_figures,
    thread_cpu_seconds,
)
from _server import database, free_port, lag_file, served

from portal.core.embedded.core import EmbeddedCore  # noqa: E402
from portal.messenger.service import visitor_token  # noqa: E402
from portal.security import Signer, hash_password  # noqa: E402

AGENT_EMAIL = "bench.agent@example.com"
AGENT_PASSWORD = "bench agent password"
TOKEN_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')
NOFILE = 65_536
# A socket may send 20 frames at once, then 10 a second (portal.messenger.protocol.RateLimit);
# the agent's watches stay under that so none is refused.
WATCH_BURST = 15
WATCH_RATE = 9.0
# How long to wait for acknowledgements, then for the agent's frames, after the last send.
DRAIN_S = 30.0


def clock() -> float:
    """CLOCK_MONOTONIC: system-wide on Linux, so comparable between processes."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def raise_nofile() -> None:
    """Allow NOFILE open files (as root, the hard limit too); the server inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, NOFILE), max(hard, NOFILE)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_files_limit(pid: int) -> int:
    """The process's soft RLIMIT_NOFILE, from /proc/PID/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise RuntimeError("no open files limit")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


VERBOSE = False
_T0 = time.monotonic()


def note(text: str) -> None:
    """A progress line on stderr with -v."""
    if VERBOSE:
        print(f"# {time.monotonic() - _T0:6.1f} s  {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


async def seed(url: str, conversations: int) -> tuple[int, list[tuple[str, int]]]:
    """A tenant on 127.0.0.1, its agent and `conversations` chats, one per visitor.

    Returns the tenant id and (visitor id, conversation id) pairs. The chats are made through
    the core rather than by `start` frames: one address may start 10 an hour, a tenant 200 a
    minute (`portal.ratelimit`), and starting them is not what is measured.
    """
    core = EmbeddedCore(url)
    await core.start()
    try:
        tenants = core.tenants
        tenant = await tenants.create_tenant("bench", "Bench", domains=("127.0.0.1",))
        # Nobody answers the benchmark's chats: keep them "waiting" rather than "no answer".
        await tenants.update_tenant_settings(tenant.id, {"chat_answer_timeout_s": 3600})
        await tenants.create_agent(
            tenant.id, AGENT_EMAIL, "Bench Agent", hash_password(AGENT_PASSWORD), "agent"
        )
        chats = []
        for i in range(conversations):
            visitor = f"chat-{i}"
            conversation = await core.chat.start_conversation(
                tenant.id, visitor_id=visitor, subject="Hello?", idempotency_key=f"bench-{i}"
            )
            chats.append((visitor, conversation.id))
        return tenant.id, chats
    finally:
        await core.close()


# ------------------------------------------------------------------ client processes
def _run(main: Any, pipe: Connection, *args: Any) -> None:
    pin_to_load_core()  # off the server's core: clients measured with the server would skew it
    raise_nofile()
    try:
        asyncio.run(main(pipe, *args))
    except Exception as exc:  # tell the parent rather than leave it waiting
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise


async def _command(pipe: Connection) -> Any:
    return await asyncio.to_thread(pipe.recv)


def _error_name(exc: BaseException) -> str:
    """The exception's type, with the close code or the underlying cause when there is one."""
    code = getattr(getattr(exc, "rcvd", None), "code", None)
    cause = exc.__cause__
    detail = f" {code}" if code else f" ({type(cause).__name__}: {cause})" if cause else ""
    return f"{type(exc).__name__}{detail}"


async def _visitor(port: int, token: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(f"ws://127.0.0.1:{port}/messenger/ws", ping_interval=None, open_timeout=60)
    try:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if frame.get("type") != "ready":
            raise RuntimeError(f"hello answered {frame.get('type')}")
    except BaseException:
        ws.transport.abort()
        raise
    return ws


async def idle_client(
    pipe: Connection, port: int, secret: str, tenant_id: int, index: int, count: int
) -> None:
    """On "warm" open, ping and drop a few sockets; on "open" open `count` visitor sockets;
    on "check" ping each one; on "close" drop them. Each command is answered."""
    signer = Signer(secret)
    errors: Counter[str] = Counter()

    async def open_many(count: int, prefix: str) -> list[Any]:
        opened: list[Any] = []
        numbers = iter(range(count))

        async def opener() -> None:
            for i in numbers:
                token = visitor_token(signer, tenant_id, f"{prefix}-{index}-{i}")
                try:
                    opened.append(await _visitor(port, token))
                except Exception as exc:
                    errors[_error_name(exc)] += 1

        await asyncio.gather(*(opener() for _ in range(25)))
        return opened

    async def check(ws: Any) -> bool:
        try:
            await ws.send('{"type":"ping"}')
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame.get("type") == "pong":
                    return True
        except Exception as exc:
            errors[_error_name(exc)] += 1
            return False

    opened: list[Any] = []
    while (command := await _command(pipe)) != "close":
        if command == "warm":
            warm = await open_many(50, "warm")
            await asyncio.gather(*(check(ws) for ws in warm))
            for ws in warm:
                await ws.close()
            pipe.send(("warmed",))
        elif command == "open":
            started = clock()
            opened = await open_many(count, "idle")
            pipe.send(("opened", len(opened), clock() - started))
        elif command == "check":
            answered = sum(await asyncio.gather(*(check(ws) for ws in opened)))
            pipe.send(("checked", answered, dict(errors)))
    for ws in opened:
        ws.transport.abort()


async def visitor_client(
    pipe: Connection,
    port: int,
    secret: str,
    tenant_id: int,
    index: int,
    chats: list[tuple[str, int]],
    procs: int,
) -> None:
    """Open a socket per (visitor, conversation) of `chats`; on each ("send", round, start,
    rate, seconds) send this process's share of that round's messages and report them."""
    signer = Signer(secret)
    sockets: list[tuple[Any, int]] = []
    acks = 0
    last_ack = 0.0
    sent_at: dict[str, float] = {}
    ack_ms: list[float] = []
    errors: Counter[str] = Counter()

    async def read(ws: Any) -> None:
        nonlocal acks, last_ack
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "ack":
                    acks += 1
                    last_ack = clock()
                    if frame["client_id"] in sent_at:
                        ack_ms.append((last_ack - sent_at.pop(frame["client_id"])) * 1000)
                elif frame["type"] == "error":
                    errors[frame.get("code", "?")] += 1
        except Exception as exc:
            errors[_error_name(exc)] += 1

    await _command(pipe)  # "start", once the server runs and the agent is online
    pending = iter(chats)

    async def opener() -> None:
        for visitor, cid in pending:
            sockets.append((await _visitor(port, visitor_token(signer, tenant_id, visitor)), cid))

    await asyncio.gather(*(opener() for _ in range(10)))
    # Visit the conversations in a shuffled cycle, so that the agent's watched ones (all of
    # them, or with --quick the first few) are written to evenly over the whole run.
    random.Random(index).shuffle(sockets)
    readers = [asyncio.create_task(read(ws)) for ws, _ in sockets]
    pipe.send(("started",))
    acked = 0  # acknowledgements counted for earlier rounds
    while (command := await _command(pipe)) != "close":
        _, number, begin, rate, seconds = command
        total = int(rate * seconds)
        sent: list[tuple[int, str]] = []
        first = last = 0.0
        ack_ms.clear()
        # This process's turns of the aggregate schedule; numbered on from the earlier rounds,
        # so the cycle over the conversations goes on and every client id and tag is new.
        for n in range(index, total, procs):
            delay = begin + n / rate - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            number_n = number * total + n
            ws, cid = sockets[(number_n // procs) % len(sockets)]
            tag = f"{index}:{number_n}"
            now = sent_at[f"b{number_n}"] = clock()
            await ws.send(
                json.dumps(
                    {
                        "type": "message",
                        "conversation_id": cid,
                        "client_id": f"b{number_n}",
                        "body": f"bench {now:.6f} {tag}",
                    }
                )
            )
            first = first or now
            last = now
            sent.append((cid, tag))
        deadline = clock() + DRAIN_S
        while acks - acked < len(sent) and clock() < deadline:
            await asyncio.sleep(0.05)
        round_acks, acked = acks - acked, acks
        pipe.send(("sent", sent, first, last, round_acks, last_ack, dict(errors), list(ack_ms)))
    for task in readers:
        task.cancel()
    for ws, _ in sockets:
        ws.transport.abort()


async def agent_client(pipe: Connection, port: int, floor: bool) -> None:
    """Sign in, open /agent/ws, watch the conversations given with "start"; report latencies on
    "stop". The floor's agent socket needs no sign-in and no watch: it gets every message."""
    import httpx
    from websockets.asyncio.client import connect

    _, watch_ids = await _command(pipe)  # ("start", ids), once the server runs
    base = f"http://127.0.0.1:{port}"
    cookie = ""
    async with httpx.AsyncClient(base_url=base) as client:
        if floor:
            watch_ids = []
        else:
            cookie = await sign_in(client)
    ws = await connect(
        f"ws://127.0.0.1:{port}/agent/ws",
        origin=base,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie} if cookie else {},
        ping_interval=None,
        max_queue=None,
    )
    await ws.send('{"type":"hello"}')
    if json.loads(await ws.recv())["type"] != "ready":
        raise RuntimeError("the agent's hello was refused")
    await agent_session(pipe, ws, watch_ids)


async def sign_in(client: Any) -> str:
    """Sign the agent in through the login form; the session's cookie header."""
    page = await client.get("/admin/login")
    csrf = html.unescape(TOKEN_RE.findall(page.text)[0])
    response = await client.post(
        "/admin/login",
        data={"csrf_token": csrf, "email": AGENT_EMAIL, "password": AGENT_PASSWORD},
    )
    if response.status_code != 303:
        raise RuntimeError(f"login answered {response.status_code}")
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


async def agent_session(pipe: Connection, ws: Any, watch_ids: list[int]) -> None:
    """Read the agent's frames and watch `watch_ids`, answering the parent's "status"."""
    message_latency: dict[str, float] = {}
    inbox_latency: dict[str, float] = {}
    errors: Counter[str] = Counter()
    caught_up: set[int] = set()
    catch_ups = 0  # more than one per watch: the hub dropped this socket's queue (hub.resumed)

    def bench(body: str, now: float, into: dict[str, float]) -> None:
        if body.startswith("bench "):
            _, stamp, tag = body.split(" ", 2)
            into.setdefault(tag, now - float(stamp))

    async def read() -> None:
        nonlocal catch_ups
        async for raw in ws:
            now = clock()
            frame = json.loads(raw)
            kind = frame["type"]
            if kind == "message":
                bench(frame["message"]["body"], now, message_latency)
            elif kind == "inbox":
                for conversation in frame["conversations"]:
                    bench(conversation["last_message_preview"], now, inbox_latency)
            elif kind == "caught_up":
                caught_up.add(frame["conversation_id"])
                catch_ups += 1
            elif kind == "error":
                errors[frame.get("code", "?")] += 1

    async def watch() -> None:
        # The server's token bucket, mirrored with less room, so that no watch is refused.
        tokens, stamp = float(WATCH_BURST), clock()
        for cid in watch_ids:
            now = clock()
            tokens = min(WATCH_BURST, tokens + (now - stamp) * WATCH_RATE)
            stamp = now
            if tokens < 1:
                await asyncio.sleep((1 - tokens) / WATCH_RATE)
                tokens, stamp = 1.0, clock()
            tokens -= 1
            await ws.send(json.dumps({"type": "watch", "conversation_id": cid, "last_id": 0}))

    reader = asyncio.create_task(read())
    watcher = asyncio.create_task(watch())
    pipe.send(("ready",))
    while await _command(pipe) != "stop":
        pipe.send(("status", sorted(caught_up), len(message_latency), dict(errors)))
    watcher.cancel()
    errors["repeated catch-ups"] = catch_ups - len(caught_up)
    pipe.send(("report", sorted(caught_up), message_latency, inbox_latency, dict(errors)))
    reader.cancel()
    ws.transport.abort()


# ------------------------------------------------------------------ the parent
class Clients:
    """Client processes, each with a pipe; the server must stay up while waiting on them."""

    def __init__(self, log: Path) -> None:
        self.server: Any = None  # the `portal serve` Popen, once it runs
        self.log = log
        self.ctx = mp.get_context("spawn")
        self.procs: list[tuple[Any, Connection]] = []

    def spawn(self, main: Any, *args: Any) -> Connection:
        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(target=_run, args=(main, theirs, *args), daemon=True)
        proc.start()
        self.procs.append((proc, mine))
        return mine

    def recv(self, pipe: Connection, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while not pipe.poll(0.2):
            if self.server is not None and self.server.poll() is not None:
                self.fail(f"the server exited with {self.server.returncode}")
            if time.monotonic() > deadline:
                self.fail("a client process did not answer in time")
        reply = pipe.recv()
        if reply[0] == "failed":
            self.fail(f"a client process failed: {reply[1]}")
        return reply

    def fail(self, why: str) -> None:
        tail = self.log.read_text(errors="replace").splitlines()[-30:] if self.log.exists() else []
        raise SystemExit(f"{why}; the server's log ends:\n" + "\n".join(tail))

    def close(self) -> None:
        """Tell every client process to drop its sockets and end; then wait for them."""
        for proc, pipe in self.procs:
            if proc.is_alive():
                try:
                    pipe.send("close")
                except OSError:
                    pass
        for proc, _ in self.procs:
            proc.join(timeout=20)
            if proc.is_alive():
                proc.kill()
        self.procs.clear()


def idle_connections(
    data: Path, url: str, secret: str, tenant_id: int, target: int, procs: int, compression: bool
) -> None:
    suffix = "_compression" if compression else "_nocompression"
    port = free_port()
    log = data / f"server-idle{suffix}.log"
    env = {
        "PORTAL_SECRET_KEY": secret,
        "PORTAL_WS_MAX_PER_IP": "50000",
        "PORTAL_WS_COMPRESSION": "1" if compression else "0",
    }
    clients = Clients(log)
    try:
        # The client processes start (import) while the server does.
        shares = [target // procs + (i < target % procs) for i in range(procs)]
        pipes = [
            clients.spawn(idle_client, port, secret, tenant_id, i, share)
            for i, share in enumerate(shares)
        ]
        with served(data, port, log=log, cpu=SERVER_CPU, database_url=url, **env) as server:
            clients.server = server
            limit = open_files_limit(server.pid)
            if target > limit - 100:
                # Past it uvloop (libuv) accepts and at once closes new connections, unlogged.
                print(f"# the server may open only {limit} files (RLIMIT_NOFILE)", file=sys.stderr)
            pipes[0].send("warm")  # the first sockets load what every later one uses
            clients.recv(pipes[0])
            time.sleep(0.5)
            before = rss_kb(server.pid)
            note(f"idle{suffix}: server up, {before // 1024} MB; opening {target} sockets")
            for pipe in pipes:
                pipe.send("open")
            replies = [clients.recv(pipe) for pipe in pipes]
            opened = sum(r[1] for r in replies)
            seconds = max(r[2] for r in replies)
            note(f"idle{suffix}: {opened} open in {seconds:.1f} s; pinging each")
            time.sleep(1)
            for pipe in pipes:
                pipe.send("check")
            checked = [clients.recv(pipe) for pipe in pipes]
            held = sum(r[1] for r in checked)
            after = rss_kb(server.pid)
            note(f"idle{suffix}: {held} answered; server CPU {cpu_seconds(server.pid):.1f} s")
            errors: Counter[str] = Counter()
            for reply in checked:
                errors.update(reply[2])
            clients.close()
    finally:
        clients.close()
    print(f"idle_connections_held{suffix}: {held} conns")
    print(f"idle_connect_rate{suffix}: {opened / seconds:.0f} conns/s")
    print(f"server_rss_idle_mb{suffix}: {after / 1024:.0f} MB")
    print(f"server_memory_per_connection_kb{suffix}: {(after - before) / max(held, 1):.1f} KB")
    sys.stdout.flush()
    if errors or held < target:
        print(f"# {target - held} of {target} not held: {dict(errors)}", file=sys.stderr)


@dataclass(frozen=True)
class ChatLoad:
    """The latency run's shape: who chats, who is watched, how fast, for how long."""

    secret: str
    tenant_id: int
    chats: list[tuple[str, int]]  # (visitor id, conversation id), one socket each
    watch: int  # conversations the agent watches (ours; the floor relays every one)
    procs: int  # visitor client processes
    rate: float  # messages/s, all visitors together
    seconds: float


@dataclass
class Round:
    """One round of load on one server: what it spent, and what the visitors reported."""

    spent: float  # the server's CPU seconds
    wall: float  # seconds from the first send to the last acknowledgement
    replies: list[Any]  # each visitor process's ("sent", ...) report

    @property
    def sent(self) -> int:
        return sum(len(reply[1]) for reply in self.replies)

    @property
    def cpu_per_message_ms(self) -> float:
        return 1000 * self.spent / max(self.sent, 1)


class ChatRun:
    """Ours or the floor, served, with every visitor's and the agent's socket open (and, ours,
    the agent watching): ready for rounds of load, then for its figures (`results`)."""

    def __init__(self, data: Path, url: str, load: ChatLoad, floor: bool) -> None:
        self.data, self.url, self.load, self.floor = data, url, load, floor
        self.what = "floor" if floor else "ours"
        self.port = free_port()
        self.log = data / ("floor-latency.log" if floor else "server-latency.log")
        self.lag = data / "floor-loop-lag.txt" if floor else lag_file(data)
        self.clients = Clients(self.log)
        self.rounds: list[Round] = []
        self.watched_ids: list[int] = []
        self.started = 0.0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ChatRun:
        self._stack.callback(self.clients.close)
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _open(self) -> None:
        load, what = self.load, self.what
        watch_ids = [] if self.floor else [cid for _, cid in load.chats[: load.watch]]
        self.agent = self.clients.spawn(agent_client, self.port, self.floor)
        self.pipes = [
            self.clients.spawn(
                visitor_client,
                self.port,
                load.secret,
                load.tenant_id,
                i,
                load.chats[i :: load.procs],
                load.procs,
            )
            for i in range(load.procs)
        ]
        env = {"PORTAL_SECRET_KEY": load.secret, "PORTAL_WS_MAX_PER_IP": "50000"}
        self.server = self._stack.enter_context(
            floor_server(BARE_ROUTES, self.port, cpu=SERVER_CPU, lag=self.lag)
            if self.floor
            else served(
                self.data, self.port, log=self.log, cpu=SERVER_CPU, database_url=self.url, **env
            )
        )
        self.clients.server = self.server
        self.agent.send(("start", watch_ids))
        self.clients.recv(self.agent)
        note(f"latency ({what}): agent online; visitors opening sockets")
        for pipe in self.pipes:
            pipe.send("start")
        for pipe in self.pipes:
            self.clients.recv(pipe)
        note(f"latency ({what}): sockets open; agent watching {len(watch_ids)}")
        deadline = time.monotonic() + len(watch_ids) / WATCH_RATE + 60
        while True:  # until the agent has every watched conversation caught up
            self.agent.send("status")
            _, self.watched_ids, _, agent_errors = self.clients.recv(self.agent)
            if len(self.watched_ids) >= len(watch_ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        note(f"latency ({what}): {len(self.watched_ids)} watched, errors {agent_errors}")

    def round(self, seconds: float) -> Round:
        """Send `rate` messages a second for `seconds`; wait for their acknowledgements."""
        self.started = self.started or time.time()
        cpu = thread_cpu_seconds(self.server.pid)
        begin = clock() + 0.5
        for pipe in self.pipes:
            pipe.send(("send", len(self.rounds), begin, self.load.rate, seconds))
        replies = [self.clients.recv(pipe, seconds + DRAIN_S + 60) for pipe in self.pipes]
        spent = thread_cpu_seconds(self.server.pid) - cpu
        made = Round(spent, clock() - begin, replies)
        self.rounds.append(made)
        note(f"latency ({self.what}): round {len(self.rounds)}, {made.sent} sent and acknowledged")
        return made

    def results(self) -> list[tuple[str, float, str]]:
        """Wait for the agent's frames; every round's figures together, unprefixed."""
        sent_replies = [reply for made in self.rounds for reply in made.replies]
        sent = [item for reply in sent_replies for item in reply[1]]
        watched_set = (
            set(self.watched_ids) if not self.floor else {cid for _, cid in self.load.chats}
        )
        expected = sum(cid in watched_set for cid, _ in sent)
        deadline = time.monotonic() + DRAIN_S
        count, progress = -1, time.monotonic()
        while time.monotonic() < deadline:  # until every message came, or none for 5 s
            self.agent.send("status")
            received = self.clients.recv(self.agent)[2]
            if received >= expected or time.monotonic() - progress > 5:
                break
            if received > count:
                count, progress = received, time.monotonic()
            time.sleep(0.2)
        self.agent.send("stop")
        _, _, message_latency, inbox_latency, agent_errors = self.clients.recv(self.agent)
        # From the first send to the last frame (the floor's watch: the machine's own stalls).
        stall = loop_stall(self.lag, self.started, time.time())
        to_watched = [tag for cid, tag in sent if cid in watched_set]
        delivered = [message_latency[tag] * 1000 for tag in to_watched if tag in message_latency]
        inbox = [inbox_latency[tag] * 1000 for _, tag in sent if tag in inbox_latency]
        acks = sum(r[4] for r in sent_replies)
        errors: Counter[str] = Counter(agent_errors)
        for reply in self.rounds[-1].replies:  # (each process's errors, counted over the rounds)
            errors.update(reply[6])
        ack_ms = [ms for reply in sent_replies for ms in reply[7]]
        sending = sum(
            max(r[3] for r in m.replies) - min(r[2] for r in m.replies) for m in self.rounds
        )
        storing = sum(
            max(r[5] for r in m.replies) - min(r[2] for r in m.replies) for m in self.rounds
        )
        spent = sum(made.spent for made in self.rounds)
        print(
            f"# {self.what}: {len(watched_set)} of {len(self.load.chats)} conversations watched, "
            f"{acks} of {len(sent)} messages acknowledged, {len(inbox)} inbox frames, "
            f"errors: {dict(errors)}",
            file=sys.stderr,
        )
        rows = [
            ("message_latency_p50_ms", percentile(delivered, 50), "ms"),
            ("message_latency_p99_ms", percentile(delivered, 99), "ms"),
            ("messages_delivered", len(delivered), f"of {len(to_watched)}"),
            ("ack_latency_p50_ms", percentile(ack_ms, 50), "ms"),
            ("ack_latency_p99_ms", percentile(ack_ms, 99), "ms"),
        ]
        if not self.floor:  # the floor's agent gets messages, no inbox
            rows += [
                ("inbox_latency_p50_ms", percentile(inbox, 50), "ms"),
                ("inbox_latency_p99_ms", percentile(inbox, 99), "ms"),
            ]
        return rows + [
            ("achieved_send_rate", len(sent) / max(sending, 1e-9), "msg/s"),
            ("stored_rate", acks / max(storing, 1e-9), "msg/s"),
            ("server_cpu_busy", 100 * spent / sum(made.wall for made in self.rounds), "%"),
            ("server_cpu_per_message_ms", 1000 * spent / max(len(sent), 1), "ms/msg"),
            *stall_figures("chat", stall),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, under a minute")
    parser.add_argument("--connections", type=int, help="idle sockets to open")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--rate", type=float, default=500, help="messages/s, all visitors")
    parser.add_argument("--seconds", type=float, help="how long the visitors send, each round")
    parser.add_argument("--rounds", type=int, help="rounds of load on each server, in turns")
    parser.add_argument("--sockets", type=int, help="visitor sockets (and chats) sending")
    parser.add_argument("--only", choices=["idle", "latency"], help="run one of the two parts")
    parser.add_argument("--data", help="keep the database and server logs in this new folder")
    parser.add_argument("--postgres", action="store_true", help="our core on PostgreSQL")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    pin_to_load_core()
    raise_nofile()
    target = args.connections or (2_000 if args.quick else 10_000)
    sockets = args.sockets or (500 if args.quick else 1_000)
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or tmp).resolve()
        data.mkdir(parents=True, exist_ok=True)
        with database(data, args.postgres) as url:
            tenant_id, chats = asyncio.run(seed(url, sockets))
            for compression in (False, True) if args.only != "latency" else ():
                idle_connections(data, url, secret, tenant_id, target, args.clients, compression)
            if args.only == "idle":
                return
            load = ChatLoad(
                secret,
                tenant_id,
                chats,
                watch=50 if args.quick else 1_000,
                procs=2,
                rate=args.rate,
                seconds=args.seconds or (1.5 if args.quick else 2),
            )
            rounds = args.rounds or (4 if args.quick else 6)
            with (
                ChatRun(data, url, load, floor=False) as ours,
                ChatRun(data, url, load, floor=True) as floor,
            ):
                # Rounds taken in turns, so that both meet the same moments of a shared
                # machine; the ratio is the median of the rounds' own.
                ratios = []
                for _ in range(rounds):
                    mine, bare = ours.round(load.seconds), floor.round(load.seconds)
                    ratios.append(mine.cpu_per_message_ms / max(bare.cpu_per_message_ms, 1e-9))
                ours_rows, floor_rows = ours.results(), floor.results()
            show(ours_rows)
            show([(f"floor_{name}", value, unit) for name, value, unit in floor_rows])
            print(
                "# cpu per message, ours / floor, by round: "
                + ", ".join(
                    f"{a.cpu_per_message_ms:.3f} / {b.cpu_per_message_ms:.3f} ms"
                    for a, b in zip(ours.rounds, floor.rounds, strict=True)
                ),
                file=sys.stderr,
            )
            print(
                f"# cpu per message vs floor, by round: {[round(r, 2) for r in ratios]}",
                file=sys.stderr,
            )
            show([("cpu_per_message_vs_floor", statistics.median(ratios), "ratio")])


if __name__ == "__main__":
    main()
