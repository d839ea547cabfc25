"""A real core API server (uvicorn, on a port it keeps across restarts, so it can be stopped
and started again) and edge apps on RemoteCore pointed at it, sharing one edge database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from portal.core.api.app import create_core_app
from portal.core.api.keys import ApiKeys
from portal.core.contract import Form, FormDraft, Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.serving import server_config
from portal.settings import Settings
from tests import polling
from tests.conftest import BASE_DOMAIN, Server, serve_app, sqlite_database
from tests.processes import free_port

SECRET = "test-secret-key-that-is-long-enough-0123456789"
HOST = f"acme.{BASE_DOMAIN}"
DEADLINE_S = 15.0


async def until(check: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    return await polling.until(check, what, timeout)


@dataclass
class CoreServer:
    """`portal core`'s app under uvicorn on `port`; `stop()` and `start()` again at will."""

    database_url: str
    settings: Settings
    port: int = field(default_factory=free_port)
    core: EmbeddedCore | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None
    app: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> EmbeddedCore:
        assert self.core is not None, "the core is stopped"
        return self.core

    async def start(self) -> None:
        self.core = EmbeddedCore(self.database_url)
        app = create_core_app(self.settings, self.core)
        config = server_config(
            app, self.settings, host="127.0.0.1", port=self.port, log_level="warning",
            log_config=None, lifespan="on", timeout_graceful_shutdown=1,
        )  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.app = app

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        self.core = None


@dataclass
class Setup:
    core: CoreServer
    tenant: Tenant
    form: Form
    key: str
    root: Path

    def edge_settings(self, name: str = "edge") -> Settings:
        """An edge on the remote core; every edge of the module shares one edge database."""
        return Settings(
            data_dir=str(self.root / name),
            base_domain=BASE_DOMAIN,
            secret_key=SECRET,
            core_url=self.core.url,
            core_key=self.key,
            core_timeout_s="2",
            edge_database_url=f"sqlite+aiosqlite:///{self.root / 'edge.db'}",
            outbox_send_wait_s="1",
            outbox_retry_max_s="0.2",
        )


@asynccontextmanager
async def core_setup(root: Path) -> AsyncIterator[Setup]:
    database_dir = root / "core-db"
    database_dir.mkdir()
    settings = Settings(
        data_dir=str(root / "core-data"), base_domain=BASE_DOMAIN, secret_key=SECRET
    )
    core = CoreServer(sqlite_database(database_dir), settings)
    await core.start()
    try:
        embedded = core.running
        tenant = await embedded.tenants.create_tenant("acme", "Acme")
        form = await embedded.forms.save_form(tenant.id, FormDraft("Contact us"))
        keys: ApiKeys = core.app.state.api_keys
        _, key = await keys.create(tenant.id, "outbox tests")
        yield Setup(core, tenant, form, key, root)
    finally:
        if core.core is not None:
            await core.stop()


@asynccontextmanager
async def edge(setup: Setup, name: str = "edge", *, live: bool = False) -> AsyncIterator[Server]:
    """An edge app (in process; `live`: under uvicorn, for websockets) whose own RemoteCore
    speaks to the core server."""
    from portal.app import create_app

    settings = setup.edge_settings(name)
    app = create_app(settings)
    # `Server` wants an embedded core for its helpers; the test reaches the core's database
    # through `setup.core.running` instead, which changes across restarts.
    async with serve_app(app, settings, setup.core.running, live=live) as served:
        yield served


async def wait_for(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, DEADLINE_S)
