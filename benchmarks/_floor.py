"""The floor each benchmark measures beside ours: a bare Starlette app on our uvicorn settings.

`floor_server(routes_source, port)` runs, in a subprocess, a Starlette app whose routes are
defined by `routes_source` (Python that binds `routes`), configured by `portal.serving` exactly as
`portal serve` is, with the same `_server.SERVER_SETTINGS`, so ours/floor ratios compare the app's
work and nothing else. It carries the same instrument as ours, too: the loop watch
(`portal.loopwatch`, which `_server.served` turns on for ours) reports its stalls to `lag`. The
watch's 200 wake-ups a second cost about 1% of a core on an idle server, a few percent of the
CPU per chat message at 500/s: on one side only, they would count as the app's work. The floor
keeps CPython's garbage collector settings: `portal serve` tunes its own for the objects our
requests make (`serving.tune_collector`), and what that saves is ours to measure.

`BARE_ROUTES` is the floor of the page, JSON, form and chat benchmarks: the least an app must do
to give a comparable answer, and nothing of ours.
  GET /page/SIZE/ANY    a Jinja page (autoescaped, compiled once) of about SIZE bytes, titled by
                        ANY, rendered per request
  GET /json/SIZE?q=Q    a JSON answer of about SIZE bytes (search-result-shaped), encoded per
                        request
  POST /insert          a JSON body parsed, one row inserted into SQLite and committed (WAL,
                        synchronous=NORMAL: our core's settings), 201 with the new id
  WS /messenger/ws      a visitor: `hello` -> `ready`; each `message` is stored with one INSERT
                        (committed), acknowledged to the sender (`ack`) and relayed to every agent
  WS /agent/ws          an agent: `hello` -> `ready`, then receives every visitor's `message`
The SQLite file lives in a temporary folder made for the floor's lifetime.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _load import on_core
from _server import SERVER_SETTINGS, child_env, python_command

RUNNER = """
import asyncio
import contextlib
import os
import sys
from pathlib import Path
import uvicorn
from starlette.applications import Starlette
from portal.loopwatch import watch_loop
from portal.serving import server_config
from portal.settings import Settings
{routes_source}

@contextlib.asynccontextmanager
async def lifespan(app):
    watch = asyncio.create_task(watch_loop(Path(os.environ["PORTAL_LOOP_LAG_FILE"])))
    yield
    watch.cancel()

app = Starlette(routes=routes, lifespan=lifespan)
config = server_config(app, Settings.from_env(), port=int(sys.argv[1]))
uvicorn.Server(config).run()
"""

BARE_ROUTES = r'''
import itertools
import json
import os
import sqlite3

import jinja2
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

JINJA = jinja2.Environment(autoescape=True)
PAGE = JINJA.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} - Help center</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/site.css"></head>
<body><header><a href="/">Help center</a></header>
<main><h1>{{ title }}</h1>
{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>
{% endfor %}</main></body></html>
""")
WORDS = "account password reset login email invoice billing refund order & shipping".split()
PAGES = {}
ANSWERS = {}


def paragraphs(size):
    """Paragraphs of about 200 bytes filling a page to `size` bytes, made once per size."""
    if size not in PAGES:
        left = size - len(PAGE.render(title="x" * 40, paragraphs=[]))
        words, made = itertools.cycle(WORDS), []
        while left > 8:  # 8: <p>, </p> and the newline around each
            text = next(words)
            while len(text) < min(200, left - 8):
                text += " " + next(words)
            made.append(text)
            left -= len(text) + 8 + text.count("&") * 4  # & is sent as &amp;
        PAGES[size] = made
    return PAGES[size]


def results(size):
    """Search-result-shaped items making a JSON answer of about `size` bytes."""
    if size not in ANSWERS:
        made, used = [], 30
        for n in itertools.count():
            if used >= size:
                break
            item = {
                "title": f"How to reset the password of account {n}",
                "url": f"http://127.0.0.1/kb/en/articles/article-{n}",
                "snippet": "... the <mark>password</mark> of your account, then sign in ...",
                "language": "en",
            }
            made.append(item)
            used += len(json.dumps(item, separators=(",", ":"))) + 1
        ANSWERS[size] = made
    return ANSWERS[size]


async def page(request):
    title = request.path_params["rest"][-40:] or "Help"
    body = PAGE.render(title=title, paragraphs=paragraphs(request.path_params["size"]))
    return HTMLResponse(body)


async def search_json(request):
    query = request.query_params.get("q", "")
    return JSONResponse({"query": query, "results": results(request.path_params["size"])})


DB = sqlite3.connect(os.path.join(os.environ["FLOOR_DATA"], "floor.db"))
DB.execute("PRAGMA journal_mode=WAL")
DB.execute("PRAGMA synchronous=NORMAL")
DB.execute(
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, idempotency_key TEXT UNIQUE, email TEXT,"
    " subject TEXT, body TEXT)"
)
DB.execute(
    "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER, client_id TEXT,"
    " body TEXT)"
)


async def insert(request):
    data = await request.json()
    cursor = DB.execute(
        "INSERT INTO tickets (idempotency_key, email, subject, body) VALUES (?, ?, ?, ?)",
        (data["idempotency_key"], data["email"], data["subject"], data["description"]),
    )
    DB.commit()
    return JSONResponse({"id": cursor.lastrowid}, status_code=201)


AGENTS = set()
READY = json.dumps({"type": "ready"})


async def visitor(websocket):
    await websocket.accept()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("type") == "hello":
                await websocket.send_text(READY)
            elif frame.get("type") == "message":
                cursor = DB.execute(
                    "INSERT INTO messages (conversation_id, client_id, body) VALUES (?, ?, ?)",
                    (frame["conversation_id"], frame["client_id"], frame["body"]),
                )
                DB.commit()
                await websocket.send_text(
                    json.dumps({"type": "ack", "client_id": frame["client_id"]})
                )
                message = {
                    "id": cursor.lastrowid,
                    "conversation_id": frame["conversation_id"],
                    "body": frame["body"],
                }
                relayed = json.dumps({"type": "message", "message": message})
                for agent in list(AGENTS):
                    try:
                        await agent.send_text(relayed)
                    except Exception:
                        AGENTS.discard(agent)
    except WebSocketDisconnect:
        pass


async def agent(websocket):
    await websocket.accept()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("type") == "hello":
                AGENTS.add(websocket)
                await websocket.send_text(READY)
    except WebSocketDisconnect:
        pass
    finally:
        AGENTS.discard(websocket)


routes = [
    Route("/page/{size:int}/{rest:path}", page),
    Route("/json/{size:int}", search_json),
    Route("/insert", insert, methods=["POST"]),
    WebSocketRoute("/messenger/ws", visitor),
    WebSocketRoute("/agent/ws", agent),
]
'''


@contextlib.contextmanager
def floor_server(
    routes_source: str, port: int, *, cpu: int | None = None, lag: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """The floor app on 127.0.0.1:`port` until the block ends; with `cpu`, on that core only.

    The routes may keep files in the folder named by FLOOR_DATA, removed afterwards. The loop
    watch writes to `lag` (by default a file in that folder).
    """
    with tempfile.TemporaryDirectory(prefix="floor-") as data:
        pin = on_core(cpu) if cpu is not None else []
        log = Path(data) / "floor.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    *pin,
                    *python_command("-c", RUNNER.format(routes_source=routes_source), str(port)),
                ],
                cwd=data,
                env=child_env(
                    FLOOR_DATA=data,
                    PORTAL_LOOP_LAG_FILE=str(lag or Path(data) / "loop-lag.txt"),
                    **SERVER_SETTINGS,
                ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"the floor server exited:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("the floor server did not start")
            yield process
        finally:
            process.terminate()
            process.wait()
