"""Shared fixtures: a real core (SQLite; PostgreSQL too where it matters), the app served in
process or by a real uvicorn where a socket matters, a real SMTP server, action helpers.

Databases: every test that uses `core`/`server` gets a fresh SQLite database (a copy of one
migrated template). The core's own tests (tests/core/) and the tests marked `both_databases` (a
smoke set per app: a form submission, the ticket list, a reply, a search, a chat, a sign-in) run
on PostgreSQL as well.

Serving: `server` runs the app in this process, lifespan and all, and its clients speak to it
through httpx's ASGITransport: no socket, no uvicorn. Tests marked `live_server` (websockets,
event streams, browsers) get a real uvicorn on a loopback port instead; `server.url` names it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from portal.core.contract import ArticleDraft, Customer, Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.security import hash_password
from portal.serving import server_config, trusted_proxies
from portal.settings import Settings
from tests.redis_server import RedisServer, redis_server_available

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"
PG_ADMIN_DSN = os.environ.get("PORTAL_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BASE_DOMAIN = "portal.test"
# scrypt at 2**4 instead of 2**14 for fixtures' accounts: real hashes, a thousandth the work.
TEST_HASH_COST = 2**4


def service_missing(reason: str) -> None:
    """Skip, or fail on CI, where PORTAL_REQUIRE_SERVICES=1 makes every service mandatory."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PORTAL_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# Names are per process: each xdist worker has its own template and databases.
_PG_TEMPLATE = f"portal_template_{uuid.uuid4().hex[:12]}"
_pg_template_ready = False
_pg_made: list[str] = []  # migrated databases this process made (dropped at the end)
_pg_spare: list[str] = []  # of those, the ones emptied after their test, for the next one
_pg_emptying: str | None = None  # SQL that empties a migrated database; "" when not allowed


async def _pg_admin(sql: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def _pg_dsn(name: str) -> str:
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


def _pg_url(name: str) -> str:
    return _pg_dsn(name).replace("postgresql://", "postgresql+asyncpg://")


async def _emptying_sql() -> str:
    """SQL that makes a migrated database as new (every row deleted, every sequence restarted)
    in a tenth of the time a new copy of the template takes; "" when the test role is no
    superuser and may not set aside foreign keys for it (then each test gets a new copy)."""
    global _pg_emptying
    if _pg_emptying is None:
        import asyncpg

        conn = await asyncpg.connect(_pg_dsn(_PG_TEMPLATE))
        try:
            superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            if not await conn.fetchval(superuser):
                _pg_emptying = ""
            else:
                tables = await conn.fetch(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
                sequences = await conn.fetch(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
                )
                _pg_emptying = "".join(
                    [
                        "SET session_replication_role = replica;",  # no foreign-key triggers
                        *(f'DELETE FROM "{row[0]}";' for row in tables),
                        *(f'ALTER SEQUENCE "{row[0]}" RESTART;' for row in sequences),
                        "RESET session_replication_role;",
                    ]
                )
        finally:
            await conn.close()
    return _pg_emptying


async def _emptied(name: str) -> bool:
    """Empty a used migrated database for the next test; False if that cannot be done."""
    import asyncpg

    sql = await _emptying_sql()
    if not sql:
        return False
    conn = await asyncpg.connect(_pg_dsn(name))
    try:
        # What the test left connected goes, as DROP DATABASE ... WITH (FORCE) would see to.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await conn.execute(sql)
    except Exception:
        return False
    finally:
        await conn.close()
    return True


async def _migrated_template() -> str:
    """A database migrated once per test session; copying it beats migrating for each test."""
    global _pg_template_ready
    if not _pg_template_ready:
        await _pg_admin(f'CREATE DATABASE "{_PG_TEMPLATE}"')
        core = EmbeddedCore(_pg_url(_PG_TEMPLATE))
        await core.start()
        await core.close()
        _pg_template_ready = True
    return _PG_TEMPLATE


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_databases() -> Iterator[None]:
    yield
    for name in [*_pg_made, *([_PG_TEMPLATE] if _pg_template_ready else [])]:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@asynccontextmanager
async def postgres_database(*, empty: bool = False) -> AsyncIterator[str]:
    """A PostgreSQL database for one test: migrated and with no rows (a copy of the template,
    or one an earlier test used, emptied since), or `empty` (new, dropped afterwards)."""
    if not _reachable("127.0.0.1", 5432):
        service_missing("PostgreSQL is not reachable on 127.0.0.1:5432")
    if not empty and _pg_spare:
        name = _pg_spare.pop()
    else:
        name = f"portal_test_{uuid.uuid4().hex[:12]}"
        template = "" if empty else f' TEMPLATE "{await _migrated_template()}"'
        for attempt in range(50):
            try:
                await _pg_admin(f'CREATE DATABASE "{name}"{template}')
                break
            except Exception as exc:  # the template's last connection may still be closing
                if "being accessed by other users" not in str(exc) or attempt == 49:
                    raise
                await asyncio.sleep(0.05)
        if not empty:
            _pg_made.append(name)
    try:
        yield _pg_url(name)
    finally:
        if not empty and await _emptied(name):
            _pg_spare.append(name)
        else:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if name in _pg_made:
                _pg_made.remove(name)


_sqlite_template: Path | None = None


def sqlite_database(tmp_path: Path) -> str:
    """A migrated SQLite database in tmp_path: a copy of one migrated once per test session.

    Migrating from empty takes ~0.15 s; copying the file, nothing. (tests/core/test_migrations.py
    still migrates from empty, through `empty_database_url`.)
    """
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="portal-sqlite-template-"))
        url = f"sqlite+aiosqlite:///{folder}/core.db"

        async def migrate() -> None:
            core = EmbeddedCore(url)
            await core.start()
            await core.close()

        with ThreadPoolExecutor(1) as pool:  # a loop of its own: tests call this from theirs
            pool.submit(asyncio.run, migrate()).result()
        _sqlite_template = folder / "core.db"
    shutil.copyfile(_sqlite_template, tmp_path / "core.db")
    return f"sqlite+aiosqlite:///{tmp_path}/core.db"


@pytest.fixture(scope="session", autouse=True)
def _drop_sqlite_template() -> Iterator[None]:
    yield
    if _sqlite_template is not None:
        shutil.rmtree(_sqlite_template.parent, ignore_errors=True)


# The databases of tests that run on both; `postgres` lets `-m "not postgres"` leave one out.
BOTH_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@asynccontextmanager
async def database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh migrated database of `kind` ("sqlite" or "postgresql") for one test."""
    if kind == "sqlite":
        yield sqlite_database(tmp_path)
        return
    async with postgres_database() as url:
        yield url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_databases` run on PostgreSQL as well as SQLite."""
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_databases"
    ):
        metafunc.parametrize("database_url", BOTH_DATABASES, indirect=True)


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh migrated database: SQLite in tmp_path; PostgreSQL too for `both_databases`
    tests (tests/core/conftest.py runs the core's own tests on both)."""
    async with database(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database (no migrations applied), on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/core.db"
        return
    async with postgres_database(empty=True) as url:
        yield url


@pytest.fixture
async def core(database_url: str) -> AsyncIterator[EmbeddedCore]:
    the_core = EmbeddedCore(database_url)
    await the_core.start()
    yield the_core
    await the_core.close()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own (tests/redis_server.py), stopped after it."""
    if not redis_server_available():
        service_missing("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


IN_PROCESS_URL = "http://127.0.0.1:8000"  # never dialled: in-process requests go to the app


class InProcess:
    """The app in the test's event loop without a socket, served as uvicorn serves it.

    Its lifespan runs as a server runs it (the ASGI lifespan protocol, its state kept); each
    request gets a copy of that state in `scope["state"]` and runs in a task of its own, behind
    uvicorn's proxy-headers middleware with `portal serve`'s trusted proxies. An exception in
    the app is logged as uvicorn logs it and answered 500. The client address is 127.0.0.1.
    httpx's ASGITransport returns a response when the app's call has finished, background
    tasks included, and buffers the body: event streams need a live server.
    """

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.transport = httpx.ASGITransport(
            app=ProxyHeadersMiddleware(self._request, trusted_hosts=trusted_proxies(settings)),
            raise_app_exceptions=False,
        )
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._lifespan = asyncio.create_task(
            self.app(scope, self._to_app.get, self._from_app.put), name="lifespan"
        )
        await self._lifespan_phase("startup")

    async def stop(self) -> None:
        await self._lifespan_phase("shutdown")
        assert self._lifespan is not None
        await self._lifespan

    async def _lifespan_phase(self, phase: str) -> None:
        assert self._lifespan is not None
        await self._to_app.put({"type": f"lifespan.{phase}"})
        answer = asyncio.ensure_future(self._from_app.get())
        await asyncio.wait({answer, self._lifespan}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():
            answer.cancel()
            self._lifespan.result()  # the app's own exception, if it raised one
            raise RuntimeError(f"the app's lifespan ended without answering {phase}")
        message = answer.result()
        if message["type"] != f"lifespan.{phase}.complete":
            raise RuntimeError(f"lifespan {phase} failed: {message.get('message', '')}")

    async def _request(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "state": self.state.copy()}
        if scope["method"] == "HEAD":
            send = _without_body(send)
        request = asyncio.create_task(self.app(scope, receive, send))  # its own context
        try:
            await request
        except Exception:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application\n")
            raise


def _without_body(send: Send) -> Send:
    """A server sends no body in answer to HEAD."""

    async def send_head(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head


class Server:
    """The app over `core` with its lifespan running, and actions on the core.

    `client()` speaks to it in process (through `transport`), or over loopback when it has a
    `url` (tests marked `live_server`; `url` exists only then). `state` is what the app's
    lifespan yielded.
    """

    def __init__(
        self,
        url: str | None = None,
        core: EmbeddedCore | None = None,
        *,
        state: dict[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        assert core is not None and (url is None) != (transport is None)
        self.live_url = url
        self.core = core
        self.state = state if state is not None else {}
        self.transport = transport

    @property
    def url(self) -> str:
        if self.live_url is None:
            raise RuntimeError(
                "this server runs in process, without a socket: mark the test "
                "`@pytest.mark.live_server` for websockets, event streams or a browser"
            )
        return self.live_url

    def client(self, host: str = f"acme.{BASE_DOMAIN}", **kwargs: Any) -> httpx.AsyncClient:
        if self.live_url is not None:
            return httpx.AsyncClient(base_url=self.live_url, headers={"host": host}, **kwargs)
        return httpx.AsyncClient(
            transport=self.transport, base_url=IN_PROCESS_URL, headers={"host": host}, **kwargs
        )

    def service(self, name: str) -> Any:
        """One of the app's services (`portal.services.Services`), such as "tenants"."""
        return getattr(self.state["services"], name)

    async def sees_tenant(self, tenant: Tenant, timeout: float = 5.0) -> None:
        """Wait until the app's tenant cache (dropped on the core's `tenant.changed` event)
        gives `tenant` as it is now."""
        resolver = self.service("tenants")
        host = f"{tenant.slug}.{BASE_DOMAIN}"
        deadline = asyncio.get_running_loop().time() + timeout
        while (seen := await resolver.resolve(host)) != tenant:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the app still has {seen} instead of {tenant}")
            await asyncio.sleep(0.01)

    async def settings_changed(self, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
        """Change a tenant's settings, then wait until the app uses the new ones."""
        await self.core.tenants.update_tenant_settings(tenant.id, dict(changes))
        fresh = await self.core.tenants.get_tenant(tenant.slug)
        await self.sees_tenant(fresh)
        return fresh

    async def tenant(self, slug: str = "acme", name: str = "Acme") -> Tenant:
        return await self.core.tenants.create_tenant(slug, name)

    async def article(self, tenant: Tenant, title: str, body: str, **kw: object) -> None:
        from portal.core.slugs import slugify

        language = str(kw.pop("language", "en"))
        category = await self.core.kb.ensure_category(
            tenant.id, language, str(kw.pop("category", "General"))
        )
        await self.core.kb.save_article(
            tenant.id,
            ArticleDraft(
                language=language,
                slug=str(kw.pop("slug", slugify(title))),
                title=title,
                body_md=body,
                published=bool(kw.pop("published", True)),
                category_id=category.id,
            ),
        )

    async def agent(self, tenant: Tenant, email: str, password: str, role: str = "admin") -> None:
        await self.core.tenants.create_agent(
            tenant.id, email, "Agent " + email, hash_password(password, cost=TEST_HASH_COST), role
        )


async def start_server(
    app: object, settings: Settings | None = None
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Serve `app` on a free loopback port as `portal serve` would; returns (server, task, url)."""
    config = server_config(
        app,
        settings or Settings(),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        log_config=None,  # leave the test process's logging (and caplog) alone
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await task


def wants_live_server(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("live_server") is not None


@asynccontextmanager
async def serve_app(
    app: Any, settings: Settings, core: EmbeddedCore, *, live: bool = False
) -> AsyncIterator[Server]:
    """Serve `app` while the block runs: in process, or with uvicorn on loopback (`live`)."""
    if live:
        srv, task, url = await start_server(app, settings)
        try:
            yield Server(url, core, state=srv.lifespan.state)
        finally:
            await stop_server(srv, task)
        return
    in_process = InProcess(app, settings)
    await in_process.start()
    try:
        yield Server(None, core, state=in_process.state, transport=in_process.transport)
    finally:
        await in_process.stop()


@pytest.fixture
async def server(
    request: pytest.FixtureRequest, settings: Settings, core: EmbeddedCore
) -> AsyncIterator[Server]:
    """The app over `core`: in process; on a real socket for tests marked `live_server`."""
    from portal.app import create_app

    app = create_app(settings, core=core)
    async with serve_app(app, settings, core, live=wants_live_server(request)) as served:
        yield served


@pytest.fixture
async def live_server(settings: Settings, core: EmbeddedCore) -> AsyncIterator[Server]:
    """The app over `core` served by uvicorn on a loopback port, as `portal serve` serves it."""
    from portal.app import create_app

    async with serve_app(create_app(settings, core=core), settings, core, live=True) as served:
        yield served


class Inbox:
    """What a real SMTP server (aiosmtpd, in a thread) received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelope_senders: list[str] = []  # SMTP MAIL FROM of each message, in step
        self.port = 0
        self._arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self._arrived:
            self.envelope_senders.append(envelope.mail_from)
            self.messages.append(message_from_bytes(envelope.content))
            self._arrived.notify_all()
        return "250 OK"

    async def wait_for(self, to: str, timeout: float = 5.0) -> Message:
        """The first message to `to`, waiting for it to arrive."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for message in self.messages:
                if message["To"] == to:
                    return message
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no mail to {to} arrived")
            await asyncio.sleep(0.02)


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    """A real SMTP server on a free loopback port; point Settings(smtp_port=inbox.port) at it."""
    yield from smtp_server()


def smtp_server() -> Iterator[Inbox]:
    """Run a real SMTP server (aiosmtpd, in a thread) until the generator is closed."""
    inbox = Inbox()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port = port
    yield inbox
    controller.stop()


async def customer_cookie(core: EmbeddedCore, secret: str, customer: Customer) -> str:
    """The `Cookie` header of a signed-in customer, with the session row a magic link makes."""
    from portal.security import Signer
    from portal.sessions.customer import SESSION_COOKIE, SESSION_MAX_AGE, session_token
    from portal.sessions.store import session_id

    token = uuid.uuid4().hex
    expires = datetime.now(UTC) + timedelta(seconds=SESSION_MAX_AGE)
    await core.customers.create_session(
        customer.tenant_id, "customer", customer.id, session_id(token), expires
    )
    return f"{SESSION_COOKIE}={session_token(Signer(secret), customer, token)}"


async def staff_cookie(core: EmbeddedCore, secret: str, tenant: Tenant, email: str) -> str:
    """The `Cookie` header of a signed-in agent, with the session row a login makes."""
    from portal.security import Signer
    from portal.sessions import staff
    from portal.sessions.store import session_id

    agent = await core.tenants.get_agent_by_email(tenant.id, email)
    token = uuid.uuid4().hex
    expires = datetime.now(UTC) + timedelta(seconds=staff.SESSION_MAX_AGE)
    await core.customers.create_session(tenant.id, "agent", agent.id, session_id(token), expires)
    payload = {"agent_id": agent.id, "tenant_id": tenant.id, "sid": token}
    return f"{staff.SESSION_COOKIE}={Signer(secret).dumps('agent-session', payload)}"
