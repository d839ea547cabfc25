"""The core's own tests run on SQLite and on PostgreSQL: its SQL is what differs between them."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import BOTH_DATABASES, database


@pytest.fixture(params=BOTH_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database(request.param, tmp_path) as url:
        yield url
