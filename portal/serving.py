"""How uvicorn serves the app: one configuration for `portal serve`, the tests and benchmarks.

Limits that must hold before the app sees a byte live here, at the server:

- A websocket frame larger than WS_MAX_BYTES closes the socket (1009) as soon as its header
  announces the size; uvicorn's default would first read up to 16 MiB into memory.
- A client must finish its request line and headers within PORTAL_HEADER_TIMEOUT_S (default
  HEADER_TIMEOUT_S) of connecting (or of starting its next request on a kept-alive connection),
  in at most MAX_HEAD_BYTES; connections that trickle or never send headers (slowloris) are
  closed. uvicorn has no such timeout.
- A request's body may stop arriving for at most PORTAL_BODY_TIMEOUT_S (default BODY_TIMEOUT_S)
  at a time: then it is answered 408 and the connection closed, and the app, still reading,
  hears that the client is gone. Only the client's own waits count: not while the server has
  stopped reading (the app has not taken what came), nor while the client waits for a
  `100 Continue`. A request whose body came with its head, most of them, costs no timer. (How
  much of a body a route takes is the app's concern: `portal.bodylimit`.)
- An idle kept-alive connection is closed after KEEP_ALIVE_S.
- `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from PORTAL_TRUSTED_PROXIES; every
  per-address limit depends on this, so it must name exactly the reverse proxies in front.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import gc
import logging
import socket
from typing import Any, cast

import uvicorn
from starlette.types import Scope
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from portal.bodylimit import refusal
from portal.messenger.protocol import MAX_FRAME_BYTES, PING_INTERVAL_S
from portal.settings import Settings

log = logging.getLogger(__name__)

WS_MAX_BYTES = 4 * MAX_FRAME_BYTES  # room for the protocol's own limit to answer with a frame
WS_MAX_QUEUE = 16  # frames buffered per socket before reading pauses
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
BODY_STALLED = "The request body stopped arriving; send it again."
MAX_HEAD_BYTES = 64 * 1024
KEEP_ALIVE_S = 5
# New objects between two runs of the garbage collector's youngest generation (CPython: 700).
GC_YOUNG_THRESHOLD = 10_000


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request's head, and
    an idle deadline on its body."""

    header_timeout = HEADER_TIMEOUT_S
    body_timeout = BODY_TIMEOUT_S
    _head_deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _in_head = False
    _body_deadline: asyncio.TimerHandle | None = None
    _in_body = False
    _body_heard = 0.0  # the loop's time when a piece of the body last came

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        self._end_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._in_head:
            # Still in a head after parsing this: all of it was head (or the tail of a previous
            # request, which only makes the count err on the strict side).
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._end_head()
                self._refuse(b"431 Request Header Fields Too Large")
        elif self._in_body:
            # Part of a body came and more is due. One timer per body, armed only now: it
            # checks when it fires how long the body has been silent.
            self._body_heard = self.loop.time()
            if self._body_deadline is None:
                self._body_deadline = self.loop.call_later(self.body_timeout, self._body_silent)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        super().on_headers_complete()
        # Due until the message completes: in this same parse for a request without a body or
        # with all of it here. A websocket's frames are another protocol's.
        self._in_body = not upgrade

    def on_message_complete(self) -> None:
        self._end_body()
        super().on_message_complete()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _end_head(self) -> None:
        self._in_head = False
        _cancel(self._head_deadline)
        self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(b"408 Request Timeout")

    def _end_body(self) -> None:
        self._in_body = False
        _cancel(self._body_deadline)
        self._body_deadline = None

    def _body_silent(self) -> None:
        self._body_deadline = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._body_heard = now  # the server's wait, not the client's
        silent = now - self._body_heard
        if silent < self.body_timeout:
            self._body_deadline = self.loop.call_later(
                self.body_timeout - silent, self._body_silent
            )
            return
        self._end_body()
        if cycle is not None and cycle.response_started:
            self.transport.close()  # (the app's answer began: no room for ours)
            return
        body, content_type = refusal(cast(Scope, self.scope), BODY_STALLED)
        self._refuse(b"408 Request Timeout", body, content_type)

    def _refuse(
        self, status: bytes, body: bytes = b"", content_type: bytes = b"text/plain"
    ) -> None:
        head = b"HTTP/1.1 " + status + b"\r\nconnection: close\r\n"
        if body:
            head += b"content-type: " + content_type + b"\r\n"
        head += b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        self.transport.write(head + body)
        self.transport.close()


def _cancel(deadline: asyncio.TimerHandle | None) -> None:
    if deadline is not None:
        deadline.cancel()


@functools.cache
def guarded_protocol(
    header_timeout: float, body_timeout: float = BODY_TIMEOUT_S
) -> type[GuardedHttpProtocol]:
    """The guarded protocol with its own deadlines (uvicorn takes a class, not options)."""
    timeouts = {"header_timeout": header_timeout, "body_timeout": body_timeout}
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), timeouts)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the `portal` loggers at INFO (development mail goes there)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["portal"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def trusted_proxies(settings: Settings) -> list[str]:
    return [p for p in settings.trusted_proxies.replace(",", " ").split() if p]


def server_config(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None, **extra: Any
) -> uvicorn.Config:
    """The uvicorn configuration every server of ours runs with."""
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": int(settings.port) if port is None else port,
        "http": guarded_protocol(float(settings.header_timeout_s), float(settings.body_timeout_s)),
        "ws_max_size": WS_MAX_BYTES,
        "ws_max_queue": WS_MAX_QUEUE,
        # Pings keep idle chat sockets open through proxies that drop silent connections.
        "ws_ping_interval": PING_INTERVAL_S,
        "ws_ping_timeout": PING_INTERVAL_S,
        "ws_per_message_deflate": settings.ws_compression == "1",
        "timeout_keep_alive": KEEP_ALIVE_S,
        "proxy_headers": True,
        "forwarded_allow_ips": trusted_proxies(settings),
        "server_header": False,
        "log_config": log_config(),
        "access_log": settings.access_log == "1",
        # Open event streams and chat sockets must not hold a restart up: clients reconnect.
        "timeout_graceful_shutdown": 10,
    }
    options.update(extra)
    return uvicorn.Config(app, **options)


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What starting made (the app, the core's statements, compiled templates) lives as long
        # as the process: the collector's full runs need not go through it again and again.
        gc.freeze()


def tune_collector() -> None:
    """CPython runs its youngest generation every 700 new objects. A request makes thousands,
    and with several in flight each run went through the objects of all of them and moved them
    on to the next generation, whose runs went through them again: about 5% of a form
    submission's instructions. Objects that die young are freed by reference counting, unseen by
    the collector, so running it every GC_YOUNG_THRESHOLD objects costs less in all, and each run
    stays well under a millisecond."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def run_server(
    app: Any, settings: Settings, *, host: str | None = None, port: str | int | None = None
) -> None:
    """Serve `app` with our uvicorn configuration until stopped (`portal serve`, `portal core`)."""
    tune_collector()
    _Server(server_config(app, settings, host=host or None, port=int(port) if port else None)).run()
