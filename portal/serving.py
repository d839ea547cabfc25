"""How uvicorn serves the app: one configuration for `portal serve`, the tests and benchmarks.

Limits that must hold before the app sees a byte live here, at the server:

- A websocket frame larger than WS_MAX_BYTES closes the socket (1009) as soon as its header
  announces the size; uvicorn's default would first read up to 16 MiB into memory.
- A client must finish its request line and headers within PORTAL_HEADER_TIMEOUT_S (default
  HEADER_TIMEOUT_S) of connecting (or of starting its next request on a kept-alive connection),
  in at most MAX_HEAD_BYTES; connections that trickle or never send headers (slowloris) are
  closed. uvicorn has no such timeout.
- An idle kept-alive connection is closed after KEEP_ALIVE_S. A stalled body is the app's
  concern (`portal.bodylimit`).
- `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from PORTAL_TRUSTED_PROXIES; every
  per-address limit depends on this, so it must name exactly the reverse proxies in front.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from portal.messenger.protocol import MAX_FRAME_BYTES, PING_INTERVAL_S
from portal.settings import Settings

log = logging.getLogger(__name__)

WS_MAX_BYTES = 4 * MAX_FRAME_BYTES  # room for the protocol's own limit to answer with a frame
WS_MAX_QUEUE = 16  # frames buffered per socket before reading pauses
HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024
KEEP_ALIVE_S = 5


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request's head."""

    header_timeout = HEADER_TIMEOUT_S
    _head_deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _in_head = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Still in a head after parsing this: all of it was head (or the tail of a previous
        # request, which only makes the count err on the strict side).
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._end_head()
                self._refuse(b"431 Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(b"408 Request Timeout")

    def _refuse(self, status: bytes) -> None:
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        )
        self.transport.close()


@functools.cache
def guarded_protocol(header_timeout: float) -> type[GuardedHttpProtocol]:
    """The guarded protocol with its own head deadline (uvicorn takes a class, not options)."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"header_timeout": header_timeout})


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
        "http": guarded_protocol(float(settings.header_timeout_s)),
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


def run_server(
    app: Any, settings: Settings, *, host: str | None = None, port: str | int | None = None
) -> None:
    """Serve `app` with our uvicorn configuration until stopped (`portal serve`, `portal core`)."""
    uvicorn.Server(
        server_config(app, settings, host=host or None, port=int(port) if port else None)
    ).run()
