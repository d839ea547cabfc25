"""Gzip for answers a client can take compressed, as Starlette's GZipMiddleware decides it."""

from __future__ import annotations

import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware as StarlettesGZip
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from portal.compression import GZipMiddleware

BIG = "help center " * 200  # 2,400 bytes


async def big(request: Request) -> Response:
    return PlainTextResponse(BIG, headers={"vary": "Cookie"})


async def small(request: Request) -> Response:
    return PlainTextResponse("ok")


async def stream(request: Request) -> Response:
    async def parts():
        for _ in range(3):
            yield BIG.encode()

    return StreamingResponse(parts(), media_type="text/html")


async def events(request: Request) -> Response:
    return Response(BIG, media_type="text/event-stream")


async def encoded(request: Request) -> Response:
    return Response(gzip.compress(BIG.encode()), headers={"content-encoding": "gzip"})


async def partial(request: Request) -> Response:
    return PlainTextResponse(BIG, status_code=206)


ROUTES = [
    Route(f"/{handler.__name__}", handler)
    for handler in (big, small, stream, events, encoded, partial)
]


def client(middleware: type) -> httpx.AsyncClient:
    app = Starlette(routes=ROUTES, middleware=[Middleware(middleware, minimum_size=1024)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def answers(middleware: type, path: str, accept: str) -> tuple[dict[str, str], bytes]:
    """(headers that compression touches, the raw body as sent)."""
    async with client(middleware) as http:
        async with http.stream("GET", path, headers={"accept-encoding": accept}) as response:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
    names = ("content-encoding", "content-length", "vary", "content-type")
    return {name: response.headers[name] for name in names if name in response.headers}, raw


@pytest.mark.parametrize("path", ["/big", "/small", "/stream", "/events", "/encoded", "/partial"])
@pytest.mark.parametrize("accept", ["gzip, deflate, br", "identity", ""])
async def test_answers_are_those_of_starlettes_middleware(path, accept):
    ours, ours_raw = await answers(GZipMiddleware, path, accept)
    theirs, theirs_raw = await answers(StarlettesGZip, path, accept)
    assert ours == theirs
    # The same bytes once decompressed (a stream's flush points may differ between them).
    if ours.get("content-encoding") == "gzip":
        assert gzip.decompress(ours_raw) == gzip.decompress(theirs_raw)
    else:
        assert ours_raw == theirs_raw


async def test_a_large_answer_is_compressed_for_a_client_that_takes_gzip():
    headers, raw = await answers(GZipMiddleware, "/big", "gzip")
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Cookie, Accept-Encoding"
    assert int(headers["content-length"]) == len(raw) < len(BIG)
    assert gzip.decompress(raw) == BIG.encode()
    streamed, raw = await answers(GZipMiddleware, "/stream", "gzip")
    assert "content-length" not in streamed and gzip.decompress(raw) == 3 * BIG.encode()
