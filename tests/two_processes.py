"""Two app processes' worth of the service in one test: two cores on one SQLite file, two apps
joined by a real Redis, each served in process, for caches that follow events across processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from portal.app import create_app
from portal.core.embedded.core import EmbeddedCore
from portal.events import CHANNEL
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, Server, serve_app, sqlite_database


@asynccontextmanager
async def two_cores(tmp_path: Path) -> AsyncIterator[list[EmbeddedCore]]:
    """Two started cores over one SQLite file, as two processes have."""
    url = sqlite_database(tmp_path)
    cores = [EmbeddedCore(url), EmbeddedCore(url)]
    try:
        for core in cores:
            await core.start()
        yield cores
    finally:
        for core in cores:
            await core.close()


@asynccontextmanager
async def two_apps(
    tmp_path: Path, cores: list[EmbeddedCore], redis_url: str, secret: str
) -> AsyncIterator[tuple[Server, Server]]:
    """An app on each core, served, once both listen to the hub."""
    settings = [
        Settings(
            data_dir=str(tmp_path / name),
            base_domain=BASE_DOMAIN,
            secret_key=secret,
            redis_url=redis_url,
        )
        for name in ("a", "b")
    ]
    async with (
        serve_app(create_app(settings[0], core=cores[0]), settings[0], cores[0]) as a,
        serve_app(create_app(settings[1], core=cores[1]), settings[1], cores[1]) as b,
    ):
        inspector = Redis.from_url(redis_url, decode_responses=True)
        try:
            deadline = asyncio.get_running_loop().time() + 5
            while dict(await inspector.pubsub_numsub(CHANNEL)).get(CHANNEL) != 2:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("both processes never listened to the hub")
                await asyncio.sleep(0.02)
        finally:
            await inspector.aclose()
        yield a, b
