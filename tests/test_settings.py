from pathlib import Path

import pytest

from portal.settings import DEV_SECRET, Settings, SettingsError, settings_table

README = Path(__file__).parent.parent / "README.md"


def test_defaults_need_nothing_in_development():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url.endswith("/portal.db")


def test_every_setting_comes_from_its_environment_variable():
    environ = {
        name: value
        for name, value in [
            ("PORTAL_DATA_DIR", "/tmp/x"),
            ("PORTAL_BASE_DOMAIN", "help.example.com"),
            ("PORTAL_REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("PORTAL_PORT", "9000"),
            ("PORTAL_DATABASE_URL", "postgresql+asyncpg://u@h/db"),
        ]
    }
    settings = Settings.from_env(environ)
    assert settings.data_dir == "/tmp/x"
    assert settings.base_domain == "help.example.com"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.port == "9000"
    assert settings.resolved_database_url == "postgresql+asyncpg://u@h/db"


@pytest.mark.parametrize(
    "environ, names",
    [
        (
            {"PORTAL_ENV": "production", "PORTAL_BASE_DOMAIN": "help.example.com"},
            "PORTAL_SECRET_KEY",
        ),
        (
            {
                "PORTAL_ENV": "production",
                "PORTAL_SECRET_KEY": "short",
                "PORTAL_BASE_DOMAIN": "help.example.com",
            },
            "PORTAL_SECRET_KEY",
        ),
        ({"PORTAL_ENV": "production", "PORTAL_SECRET_KEY": "x" * 40}, "PORTAL_BASE_DOMAIN"),
        (
            {
                "PORTAL_ENV": "production",
                "PORTAL_SECRET_KEY": "x" * 40,
                "PORTAL_BASE_DOMAIN": "help.example.com",
                "PORTAL_PUBLIC_SCHEME": "http",
            },
            "PORTAL_PUBLIC_SCHEME",
        ),
        ({"PORTAL_ENV": "staging"}, "PORTAL_ENV"),
        ({"PORTAL_PORT": "eighty"}, "PORTAL_PORT"),
    ],
)
def test_unsafe_production_settings_fail_naming_the_variable(environ, names):
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(environ)


def test_production_accepts_safe_settings():
    settings = Settings.from_env(
        {
            "PORTAL_ENV": "production",
            "PORTAL_SECRET_KEY": "k" * 48,
            "PORTAL_BASE_DOMAIN": "help.example.com",
            "PORTAL_PUBLIC_SCHEME": "https",
        }
    )
    assert settings.production and settings.secret_key != DEV_SECRET


def test_readme_documents_every_setting():
    readme = README.read_text()
    for name, _default, _help in settings_table():
        assert f"`{name}`" in readme, f"README's settings table lacks {name}"


@pytest.mark.parametrize("value, logged", [("1", True), ("0", False)])
def test_the_access_log_is_a_setting_of_the_server(value, logged):
    from portal.serving import server_config

    settings = Settings.from_env({"PORTAL_ACCESS_LOG": value})
    assert server_config(object(), settings).access_log is logged


def test_an_access_log_setting_other_than_0_or_1_is_refused():
    with pytest.raises(SettingsError, match="PORTAL_ACCESS_LOG must be 0 or 1"):
        Settings.from_env({"PORTAL_ACCESS_LOG": "yes"})


def test_the_head_and_body_deadlines_are_settings_of_the_server():
    from portal.serving import server_config

    settings = Settings.from_env({"PORTAL_HEADER_TIMEOUT_S": "3", "PORTAL_BODY_TIMEOUT_S": "7"})
    protocol = server_config(object(), settings).http
    assert (protocol.header_timeout, protocol.body_timeout) == (3.0, 7.0)
    for name in ("PORTAL_HEADER_TIMEOUT_S", "PORTAL_BODY_TIMEOUT_S"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: "0"})


def test_the_server_runs_the_collector_less_often_than_cpython_does():
    import gc

    from portal.serving import GC_YOUNG_THRESHOLD, tune_collector

    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert GC_YOUNG_THRESHOLD > before[0]
    finally:
        gc.set_threshold(*before)
