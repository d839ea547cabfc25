"""Gzip for answers of `minimum_size` bytes or more when the client takes it: Starlette's
`GZipMiddleware`, lean.

Every request crosses this middleware. Starlette's makes header objects for every request and
every answer, and normalizes its list of excluded content types per request; this one reads the
raw header lists once each and decides the same way:
- a client whose first Accept-Encoding names gzip gets a body of `minimum_size` or more
  compressed, with Content-Encoding and Content-Length set (none for a stream or trailers);
- any body of that size, compressed or not, gets `Vary: Accept-Encoding` (shared caches must
  not hand a compressed answer to a client that cannot read it);
- answers already encoded, partial (206), or of EXCLUDED_TYPES (media, archives, event
  streams) pass as they are; bodies of 128 KiB or more are compressed in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import zlib

from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.asgi_headers import header

EXCLUDED_TYPES = frozenset(DEFAULT_EXCLUDED_CONTENT_TYPES)
MINIMUM_SIZE = 1024  # the app's: smaller answers gain too little to be worth compressing
THREAD_MINIMUM_SIZE = 128 * 1024  # compressing more than this inline would hold the event loop


# The app answers with a handful of content types: each is parsed once.
@functools.lru_cache(maxsize=256)
def _excluded(content_type: bytes) -> bool:
    media = content_type.decode("latin-1").partition(";")[0].strip().lower()
    if media in EXCLUDED_TYPES or media.partition("/")[0] + "/*" in EXCLUDED_TYPES:
        return True
    return media.startswith("application/grpc+")


def _set(headers: list[tuple[bytes, bytes]], key: bytes, value: bytes | None) -> None:
    """Replace every `key` header by one with `value` (none when `value` is None)."""
    found = [i for i, (name, _) in enumerate(headers) if name == key]
    for i in reversed(found[1:] if value is not None else found):
        del headers[i]
    if value is None:
        return
    if found:
        headers[found[0]] = (key, value)
    else:
        headers.append((key, value))


class GZipMiddleware:
    """Compresses answers as described above; `compresslevel` is zlib's (9: smallest)."""

    def __init__(self, app: ASGIApp, minimum_size: int = 500, compresslevel: int = 9) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Responder(self, send, accepts_gzip(scope)).send)


class _Responder:
    """One answer's way out: holds its start until the first body shows whether to compress."""

    __slots__ = ("compressor", "gzip", "middleware", "passthrough", "start", "started", "_send")

    def __init__(self, middleware: GZipMiddleware, send: Send, gzip: bool) -> None:
        self.middleware = middleware
        self._send = send
        self.gzip = gzip
        self.start: Message = {}
        self.started = self.passthrough = False
        self.compressor: zlib._Compress | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.start = message
            headers = message["headers"] = list(message.get("headers", ()))
            self.passthrough = message["status"] == 206 or any(
                key == b"content-encoding" or (key == b"content-type" and _excluded(value))
                for key, value in headers
            )
            if self.passthrough:
                await self._send(message)
        elif self.passthrough and kind in ("http.response.body", "http.response.pathsend"):
            await self._send(message)
        elif kind == "http.response.body" and not self.started:
            self.started = True
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) >= self.middleware.minimum_size or more:
                await self._encode_first(message, body, more)
            await self._send(self.start)
            await self._send(message)
        elif kind == "http.response.body":
            if self.gzip:
                body, more = message.get("body", b""), message.get("more_body", False)
                message["body"] = await self._compress(body, more)
            await self._send(message)
        elif kind == "http.response.pathsend":
            await self._send(self.start)
            await self._send(message)
        else:  # early hints, trailers
            await self._send(message)

    async def _encode_first(self, message: Message, body: bytes, more: bool) -> None:
        """A first body worth compressing: compressed for a client that takes gzip, and the
        start's headers said so (`Vary` whether compressed or not)."""
        headers: list[tuple[bytes, bytes]] = self.start["headers"]
        vary = next((value for key, value in headers if key == b"vary"), None)
        _set(headers, b"vary", vary + b", Accept-Encoding" if vary else b"Accept-Encoding")
        if not self.gzip:
            return
        message["body"] = compressed = await self._compress(body, more)
        _set(headers, b"content-encoding", b"gzip")
        if more or self.start.get("trailers", False):
            _set(headers, b"content-length", None)  # the whole length is not known yet
        else:
            _set(headers, b"content-length", str(len(compressed)).encode())

    async def _compress(self, body: bytes, more: bool) -> bytes:
        if len(body) >= THREAD_MINIMUM_SIZE:
            compressed = await asyncio.to_thread(self._deflate, body, more)
        else:
            compressed = self._deflate(body, more)
        return compressed

    def _deflate(self, body: bytes, more: bool) -> bytes:
        if self.compressor is None:
            level = self.middleware.compresslevel
            self.compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        data = self.compressor.compress(body)
        return data + self.compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)


# The headers of an answer sent gzipped as kept (`GzippedPage`), added to its raw headers as
# they are: setting them one by one through `Response.headers` rebuilt the list each time.
GZIPPED_HEADERS = ((b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding"))


def accepts_gzip(scope: Scope) -> bool:
    """Whether the client takes gzip: its first Accept-Encoding names it."""
    accepted = header(scope, b"accept-encoding")
    return accepted is not None and b"gzip" in accepted


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no time


class GzippedParts:
    """The gzip form of a kept page whose parts stay fixed, with one value made per answer
    between each two (a form's key): compressed once, not once per answer.

    Each part is a DEFLATE stream of its own ended on a byte boundary, and the value goes
    between them as a stored block, so an answer costs a CRC over its bytes, not a compression
    (~90 us for a 4.5 KB page, more than the rest of a kept page's answer).
    """

    __slots__ = ("_crc0", "_parts", "_raw_tail", "_segments")

    def __init__(self, parts: tuple[bytes, ...], level: int = 9) -> None:
        segments = []
        for position, part in enumerate(parts):
            deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
            last = position == len(parts) - 1
            segments.append(
                deflate.compress(part) + deflate.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
            )
        self._segments = tuple(segments)
        self._parts = parts
        self._crc0 = zlib.crc32(parts[0])
        self._raw_tail = parts[1:]

    def body(self, value: bytes = b"") -> bytes:
        """The whole gzip member for the page with `value` (< 64 KiB) in every place left."""
        if len(value) > 0xFFFF:
            raise ValueError("one stored block holds at most 65,535 bytes")
        stored = b"\x00" + struct.pack("<HH", len(value), len(value) ^ 0xFFFF) + value
        crc, size = self._crc0, len(self._parts[0])
        for part in self._raw_tail:
            crc = zlib.crc32(part, zlib.crc32(value, crc))
            size += len(value) + len(part)
        return b"".join(
            [_GZIP_HEADER, stored.join(self._segments), struct.pack("<II", crc, size & 0xFFFFFFFF)]
        )
