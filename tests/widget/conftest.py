import pytest

from tests.conftest import sqlite_database


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: the widget reads what every core offers; the core's SQL is tested elsewhere."""
    return sqlite_database(tmp_path)
