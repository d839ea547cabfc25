"""One `portal core` app per test module, served by uvicorn on a loopback port, with two tenants
and a key for each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from portal.core.api.app import create_core_app
from portal.core.api.keys import ApiKeys
from portal.core.contract import Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, BOTH_DATABASES, database, start_server, stop_server


@dataclass
class CoreApi:
    url: str
    app: Starlette
    core: EmbeddedCore
    tenant: Tenant
    key: str
    other: Tenant
    other_key: str

    @property
    def keys(self) -> ApiKeys:
        keys: ApiKeys = self.app.state.api_keys
        return keys

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10, **kwargs)


# For `pytestmark`: the module's tests run on PostgreSQL too (the database's own refusals, its
# unique keys under racing requests).
ON_BOTH_DATABASES = pytest.mark.parametrize(
    "core_api", BOTH_DATABASES, indirect=True, scope="module"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CoreApi]:
    """The core API on SQLite (or, where a module asks with ON_BOTH_DATABASES, PostgreSQL)."""
    tmp_path = tmp_path_factory.mktemp("core_api")
    async with database(getattr(request, "param", "sqlite"), tmp_path) as url:
        async with _serve(tmp_path, url) as served:
            yield served


@asynccontextmanager
async def _serve(tmp_path: Path, database_url: str) -> AsyncIterator[CoreApi]:
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )
    core = EmbeddedCore(settings.database_url)
    app = create_core_app(settings, core)
    server, task, url = await start_server(app, settings)
    try:
        tenant = await core.tenants.create_tenant("acme", "Acme", domains=("help.acme.test",))
        other = await core.tenants.create_tenant("other", "Other", domains=("help.other.test",))
        keys: ApiKeys = app.state.api_keys
        _, key = await keys.create(tenant.id, "tests")
        _, other_key = await keys.create(other.id, "tests")
        yield CoreApi(url, app, core, tenant, key, other, other_key)
    finally:
        await stop_server(server, task)
