"""One app for a whole test module: its own SQLite core in a folder of its own, served in
process (or by uvicorn with `live=True`), for module-scoped fixtures.

Starting an app (lifespan, search indexes, templates) costs far more than most tests that use
it, so tests that only read, or undo what they change, share one:

    pytestmark = pytest.mark.asyncio(loop_scope="module")

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def served(tmp_path_factory):
        async with module_app(tmp_path_factory.mktemp("mine")) as served:
            yield served
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, Server, serve_app, sqlite_database

SECRET = "test-secret-key-that-is-long-enough-0123456789"


@dataclass
class ModuleApp:
    """The served app, and where its core's database lives (`database_dir`)."""

    server: Server
    settings: Settings
    database_dir: Path


@asynccontextmanager
async def module_app(
    root: Path, *, live: bool = False, **settings: str
) -> AsyncIterator[ModuleApp]:
    """Serve a new app over a new core in `root` while the block runs; `settings` override."""
    from portal.app import create_app

    database_dir = root / "database"
    database_dir.mkdir()
    core = EmbeddedCore(sqlite_database(database_dir))
    await core.start()
    the_settings = Settings(
        data_dir=str(root / "data"), base_domain=BASE_DOMAIN, secret_key=SECRET, **settings
    )
    try:
        app = create_app(the_settings, core=core)
        async with serve_app(app, the_settings, core, live=live) as server:
            yield ModuleApp(server, the_settings, database_dir)
    finally:
        await core.close()
