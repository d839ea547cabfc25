import pytest


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: the widget reads what every core offers; the core's SQL is tested elsewhere."""
    return f"sqlite+aiosqlite:///{tmp_path}/core.db"
