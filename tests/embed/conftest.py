"""A real WordPress for the plugin's tests: Debian's package, a fresh MariaDB database, `php -S`.

Once per test session: a database `wp_test_<random>` on MariaDB (dropped at the end), a folder
holding links to Debian's WordPress (/usr/share/wordpress) beside a wp-config.php of its own
(Debian's reads /etc/wordpress/config-HOST.php; ours is found first because every PHP run
defines ABSPATH as the folder, through `auto_prepend_file`), WordPress installed by
`wp_install()` (tests/embed/wp.php runs PHP inside it; no wp-cli), the plugin in
embed-examples/wordpress linked into wp-content/plugins and activated, three pages (the front
page, "Help" with `[portal_app app="kb"]`, "About"), an administrator and a subscriber, Kim.
WordPress is served by `php -S` on 127.0.0.2, another site than the service's 127.0.0.1.

Each test sets the plugin's options it needs (`WordPress.configure`): the service is the test's
own `live_server`, on a port of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, _reachable, service_missing

WORDPRESS = Path(os.environ.get("PORTAL_WORDPRESS", "/usr/share/wordpress"))
PLUGIN = Path(__file__).resolve().parents[2] / "embed-examples" / "wordpress"
HELPER = Path(__file__).with_name("wp.php")
MARIADB_HOST = os.environ.get("PORTAL_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("PORTAL_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("PORTAL_TEST_MARIADB_USER", "root")
MARIADB_PASSWORD = os.environ.get("PORTAL_TEST_MARIADB_PASSWORD", "")
WP_HOST = "127.0.0.2"  # the company's site: another site than the service on 127.0.0.1
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1"
KIM, KIM_PASSWORD, KIM_EMAIL = "kim", "kim-password-1", "kim@example.com"


def php_binary() -> str:
    """The PHP CLI, or a skip (a failure under PORTAL_REQUIRE_SERVICES=1) saying what to install."""
    php = shutil.which(os.environ.get("PORTAL_PHP", "php"))
    if php is None:
        service_missing("PHP is not installed (apt-get install php-cli)")
    assert php is not None
    return php


@dataclass
class WordPress:
    """The running WordPress: its address, folder, pages and users, and PHP run inside it."""

    php_binary: str
    root: Path  # the site's folder, served by php -S
    url: str
    database: str
    pages: dict[str, int] = field(default_factory=dict)  # "home", "help", "about" -> id
    users: dict[str, int] = field(default_factory=dict)  # "admin", "kim" -> id

    def php(self, code: str, *, install: bool = False) -> Any:
        """Run `code` (PHP statements ending in `return ...;`) inside WordPress; its result."""
        args = [self.php_binary, *self.opcache(), str(HELPER), str(self.root)]
        args += ["install"] if install else []
        env = {**os.environ, "WP_TEST_URL": self.url}
        done = subprocess.run(args, input=code, capture_output=True, text=True, timeout=60, env=env)
        if done.returncode != 0 or "\n--JSON--\n" not in done.stdout:
            raise AssertionError(f"PHP in WordPress failed: {done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.rsplit("\n--JSON--\n", 1)[1])

    def opcache(self) -> list[str]:
        """PHP settings that keep compiled scripts in a folder: each run of WordPress from the
        command line then compiles nothing again (about half its time)."""
        cache = self.root.parent / "opcache"  # beside the site, removed with it
        cache.mkdir(exist_ok=True)
        return [
            "-d",
            "opcache.enable_cli=1",
            "-d",
            f"opcache.file_cache={cache}",
            "-d",
            "opcache.file_cache_only=1",
        ]

    def configure(self, **values: Any) -> dict[str, Any]:
        """Save the plugin's options as update_option does (cleaned by the plugin); stored ones."""
        values_json = _php_string(json.dumps(values))
        code = f"""
            update_option('portal_widget_settings', json_decode({values_json}, true));
            return get_option('portal_widget_settings');
        """
        return self.php(code)

    def store_raw(self, **values: Any) -> None:
        """Store options as they are, past the plugin's cleaning (as other code could)."""
        values_json = _php_string(json.dumps(values))
        code = f"""
            remove_all_filters('sanitize_option_portal_widget_settings');
            update_option('portal_widget_settings', json_decode({values_json}, true));
            return true;
        """
        self.php(code)

    def page_url(self, name: str) -> str:
        return f"{self.url}/?page_id={self.pages[name]}"

    def add_page(self, title: str, content: str) -> int:
        code = f"""
            return wp_insert_post(['post_type' => 'page', 'post_status' => 'publish',
                'post_title' => {_php_string(title)},
                'post_content' => {_php_string(content)}], true);
        """
        return int(self.php(code))

    def php_errors(self) -> list[str]:
        """What PHP logged (WP_DEBUG_LOG) since the site was made."""
        log = self.root.parent / "debug.log"
        return log.read_text().splitlines() if log.exists() else []

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)

    @asynccontextmanager
    async def logged_in(self, user: str, password: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client with the cookies WordPress's own login form gives `user`."""
        async with self.client() as client:
            client.cookies.set("wordpress_test_cookie", "WP Cookie check")
            response = await client.post(
                "/wp-login.php",
                data={
                    "log": user,
                    "pwd": password,
                    "wp-submit": "Log In",
                    "redirect_to": self.url + "/",
                    "testcookie": "1",
                },
            )
            assert response.status_code == 302, response.text[:2000]
            assert any(name.startswith("wordpress_logged_in_") for name in client.cookies)
            yield client


def _php_string(text: str) -> str:
    """A PHP single-quoted string literal holding `text`."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _mariadb(php: str, sql: str) -> None:
    code = (
        "mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);"
        "$m = new mysqli(getenv('DB_HOST'), getenv('DB_USER'), getenv('DB_PASSWORD'), '',"
        " (int) getenv('DB_PORT'));"
        "$m->query(getenv('DB_SQL'));"
    )
    env = {
        **os.environ,
        "DB_HOST": MARIADB_HOST,
        "DB_PORT": str(MARIADB_PORT),
        "DB_USER": MARIADB_USER,
        "DB_PASSWORD": MARIADB_PASSWORD,
        "DB_SQL": sql,
    }
    done = subprocess.run([php, "-r", code], env=env, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"MariaDB refused {sql!r}: {done.stdout}{done.stderr}")


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _needs(php: str) -> None:
    """Skip (fail under PORTAL_REQUIRE_SERVICES=1) when a part WordPress needs is missing."""
    if not (WORDPRESS / "wp-settings.php").exists():
        service_missing(f"WordPress is not installed at {WORDPRESS} (apt-get install wordpress)")
    if not (WORDPRESS / "wp-content" / "themes" / "twentytwentythree" / "style.css").exists():
        service_missing(
            "WordPress's default theme is not installed "
            "(apt-get install wordpress-theme-twentytwentythree)"
        )
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=True).stdout
    if "mysqli" not in modules.split():
        service_missing("PHP has no mysqli extension (apt-get install php-mysql)")
    if not _reachable(MARIADB_HOST, MARIADB_PORT):
        service_missing(f"MariaDB is not reachable on {MARIADB_HOST}:{MARIADB_PORT}")


def _folder(root: Path, url: str, database: str) -> None:
    """Links to Debian's WordPress, with a wp-config.php and wp-content of this site's own."""
    for entry in WORDPRESS.iterdir():
        if entry.name not in {"wp-config.php", "wp-content", ".htaccess"}:
            (root / entry.name).symlink_to(entry)
    (root / "wp-content" / "plugins").mkdir(parents=True)
    (root / "wp-content" / "plugins" / "portal-widget").symlink_to(PLUGIN)
    (root / "wp-content" / "themes").symlink_to(WORDPRESS / "wp-content" / "themes")
    salts = "".join(
        f"define('{name}', '{secrets.token_hex(32)}');\n"
        for name in (
            "AUTH_KEY",
            "SECURE_AUTH_KEY",
            "LOGGED_IN_KEY",
            "NONCE_KEY",
            "AUTH_SALT",
            "SECURE_AUTH_SALT",
            "LOGGED_IN_SALT",
            "NONCE_SALT",
        )
    )
    config = f"""<?php
define('DB_NAME', {_php_string(database)});
define('DB_USER', {_php_string(MARIADB_USER)});
define('DB_PASSWORD', {_php_string(MARIADB_PASSWORD)});
define('DB_HOST', {_php_string(f"{MARIADB_HOST}:{MARIADB_PORT}")});
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}$table_prefix = 'wp_';
define('WP_HOME', {_php_string(url)});
define('WP_SITEURL', {_php_string(url)});
define('WP_CONTENT_DIR', {_php_string(str(root / "wp-content"))});
define('WP_CONTENT_URL', {_php_string(url + "/wp-content")});
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('WP_DEBUG', true);
define('WP_DEBUG_DISPLAY', false);
define('WP_DEBUG_LOG', {_php_string(str(root.parent / "debug.log"))});
require_once ABSPATH . 'wp-settings.php';
"""
    (root / "wp-config.php").write_text(config)
    (root.parent / "prepend.php").write_text(
        f"<?php if (!defined('ABSPATH')) define('ABSPATH', {_php_string(str(root) + '/')});\n"
    )


INSTALL = f"""
    wp_install('Shop', '{ADMIN}', 'admin@shop.test', true, '', '{ADMIN_PASSWORD}');
    $kim = wp_insert_user(['user_login' => '{KIM}', 'user_pass' => '{KIM_PASSWORD}',
        'user_email' => '{KIM_EMAIL}', 'display_name' => 'Kim', 'role' => 'subscriber']);
    $page = function ($title, $content) {{
        return wp_insert_post(['post_type' => 'page', 'post_status' => 'publish',
            'post_title' => $title, 'post_content' => $content], true);
    }};
    $home = $page('Home', '<p>Welcome to the shop.</p>');
    $help = $page('Help', '<p>Find answers here.</p>[portal_app app="kb"]');
    $about = $page('About', '<p>About the shop.</p>');
    update_option('show_on_front', 'page');
    update_option('page_on_front', $home);
    $activated = activate_plugin('portal-widget/portal-widget.php');
    if (is_wp_error($activated)) {{
        return ['error' => $activated->get_error_message()];
    }}
    $admin = get_user_by('login', '{ADMIN}');
    return ['pages' => ['home' => $home, 'help' => $help, 'about' => $about],
        'users' => ['admin' => $admin->ID, 'kim' => $kim],
        'active' => get_option('active_plugins')];
"""


@pytest.fixture(scope="session")
def wordpress() -> Iterator[WordPress]:
    """WordPress with the plugin active, served by `php -S` until the session ends."""
    php = php_binary()
    _needs(php)
    database = f"wp_test_{secrets.token_hex(6)}"
    base = Path(tempfile.mkdtemp(prefix="portal-wordpress-"))
    root = base / "site"  # what php -S serves; logs and caches beside it
    root.mkdir()
    port = _free_port(WP_HOST)
    url = f"http://{WP_HOST}:{port}"
    process: subprocess.Popen[bytes] | None = None
    _mariadb(php, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    try:
        _folder(root, url, database)
        site = WordPress(php, root, url, database)
        made = site.php(INSTALL, install=True)
        assert "error" not in made, made
        assert made["active"] == ["portal-widget/portal-widget.php"], made
        site.pages, site.users = made["pages"], made["users"]
        with open(base / "server.log", "wb") as log:
            process = subprocess.Popen(
                [php, "-d", f"auto_prepend_file={base / 'prepend.php'}", "-S", f"{WP_HOST}:{port}"]
                + ["-t", str(root)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"},
                start_new_session=True,  # a group of its own: its workers stop with it
            )
        deadline = time.monotonic() + 15
        while not _reachable(WP_HOST, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"php -S did not start: {(base / 'server.log').read_text()}")
            time.sleep(0.02)
        yield site
    finally:
        if process is not None:
            # Terminated alone, php -S leaves its workers running, orphaned, after the tests.
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        _mariadb(php, f"DROP DATABASE IF EXISTS `{database}`")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Site:
    """One test's parts: WordPress, our service (a live server) and the tenant behind it."""

    wordpress: WordPress
    server: Server
    tenant: Any

    @property
    def service(self) -> str:
        return self.server.url


@pytest.fixture
async def site(wordpress: WordPress, live_server: Server) -> AsyncIterator[Site]:
    """The tenant on 127.0.0.1 (the live server's host) letting WordPress frame its apps, and
    the plugin pointed at it: every page, the help desk's own side and colour, no identity key."""
    tenant = await live_server.core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    await live_server.core.tenants.update_tenant_settings(
        tenant.id, {"embed_origins": [wordpress.url]}
    )
    before = len(wordpress.php_errors())
    wordpress.configure(
        host=live_server.url,
        pages="all",
        page_ids=[],
        position="",
        color="",
        forget_key="1",
    )
    yield Site(wordpress, live_server, tenant)
    ours = (str(PLUGIN), "portal-widget", "portal_widget")
    logged = [line for line in wordpress.php_errors()[before:] if any(o in line for o in ours)]
    assert logged == [], "PHP logged these from the plugin:\n" + "\n".join(logged)


from tests.browser.conftest import browser  # noqa: E402, F401 (the same Chromium)
