"""Shared fixtures: a real core on SQLite and PostgreSQL, a real uvicorn server, action helpers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller

from portal.core.contract import ArticleDraft, Customer, Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.security import hash_password
from portal.serving import server_config
from portal.settings import Settings

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


_PG_TEMPLATE = f"portal_template_{uuid.uuid4().hex[:12]}"
_pg_template_ready = False


async def _pg_admin(sql: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def _pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0]
    return f"{base}/{name}"


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
def _drop_pg_template() -> Iterator[None]:
    yield
    if _pg_template_ready:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_PG_TEMPLATE}" WITH (FORCE)'))


@asynccontextmanager
async def postgres_database(*, empty: bool = False) -> AsyncIterator[str]:
    """A new PostgreSQL database for one test (dropped afterwards): migrated, or `empty`."""
    if not _reachable("127.0.0.1", 5432):
        service_missing("PostgreSQL is not reachable on 127.0.0.1:5432")
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
    try:
        yield _pg_url(name)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database: SQLite in tmp_path, or a new PostgreSQL database; both migrated."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path)
        return
    async with postgres_database() as url:
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
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


@dataclass
class Server:
    """A real uvicorn server in the test's event loop."""

    url: str
    core: EmbeddedCore

    def client(self, host: str = f"acme.{BASE_DOMAIN}", **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"host": host}, **kwargs)  # type: ignore[arg-type]

    async def tenant(self, slug: str = "acme", name: str = "Acme") -> Tenant:
        return await self.core.create_tenant(slug, name)

    async def article(self, tenant: Tenant, title: str, body: str, **kw: object) -> None:
        from portal.core.slugs import slugify

        language = str(kw.pop("language", "en"))
        category = await self.core.ensure_category(
            tenant.id, language, str(kw.pop("category", "General"))
        )
        await self.core.save_article(
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
        await self.core.create_agent(
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


@pytest.fixture
async def server(settings: Settings, core: EmbeddedCore) -> AsyncIterator[Server]:
    from portal.app import create_app

    srv, task, url = await start_server(create_app(settings, core=core))
    yield Server(url=url, core=core)
    await stop_server(srv, task)


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
    from portal.customer.session import SESSION_COOKIE, SESSION_MAX_AGE, session_token
    from portal.security import Signer
    from portal.sessions import session_id

    token = uuid.uuid4().hex
    expires = datetime.now(UTC) + timedelta(seconds=SESSION_MAX_AGE)
    await core.create_session(
        customer.tenant_id, "customer", customer.id, session_id(token), expires
    )
    return f"{SESSION_COOKIE}={session_token(Signer(secret), customer, token)}"
