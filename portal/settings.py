"""Settings read once from PORTAL_* environment variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

DEV_SECRET = "dev-insecure-secret-change-me"


class SettingsError(RuntimeError):
    """A setting is missing or unsafe; the message says what to set."""


def _setting(default: str, help: str) -> str:
    # The help text lives on the field so the README's settings table can be checked by a test.
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    env: str = _setting(
        "development", "`development` or `production`; production refuses unsafe defaults."
    )
    data_dir: str = _setting(
        "./data", "Folder for the SQLite database, search indexes and uploads."
    )
    database_url: str = _setting(
        "", "SQLAlchemy async URL of the core's database; empty means SQLite in the data dir."
    )
    base_domain: str = _setting("localhost", "Tenants are served on `{slug}.{base_domain}`.")
    secret_key: str = _setting(
        DEV_SECRET, "Signs sessions, CSRF and links; at least 32 characters in production."
    )
    redis_url: str = _setting(
        "", "Redis URL for pub/sub between processes; empty means one process."
    )
    ws_max_per_ip: str = _setting(
        "200", "Open chat websockets allowed per client address in one process."
    )
    ws_compression: str = _setting(
        "0", "`1` to offer per-message deflate on websockets (about twice the memory a socket)."
    )
    host: str = _setting("127.0.0.1", "Address `portal serve` listens on.")
    port: str = _setting("8000", "Port `portal serve` listens on.")
    smtp_host: str = _setting("", "SMTP server for mail to customers; empty logs mail instead.")
    smtp_port: str = _setting("25", "SMTP port.")
    smtp_user: str = _setting("", "SMTP user name, if the server wants one.")
    smtp_password: str = _setting("", "SMTP password.")
    smtp_starttls: str = _setting("0", "`1` to upgrade the SMTP connection with STARTTLS.")
    mail_from: str = _setting("help@localhost", "Sender address of mail to customers.")
    public_scheme: str = _setting(
        "http",
        "Scheme of public URLs (canonical links, sitemap, mailed links): `http` or `https`; "
        "`https` in production.",
    )
    loop_lag_file: str = _setting(
        "",
        "For benchmarks: a file the server appends its event loop's longest stall to, each "
        "second; empty means not measured.",
    )
    platform_key: str = _setting(
        "",
        "Bearer key of the operators' API (`/_platform/tenants`), at least 32 characters; "
        "empty switches the API off.",
    )
    header_timeout_s: str = _setting(
        "10",
        "Seconds a client has to send a request's line and headers, from connecting or from "
        "its previous answer; slower connections (slowloris) are closed.",
    )
    body_timeout_s: str = _setting(
        "30",
        "Seconds a request's body may stop arriving (between two of its pieces) before the "
        "answer is 408 and the connection is closed.",
    )
    access_log: str = _setting(
        "1",
        "`1` writes a line per request to standard output (uvicorn's access log); `0` behind a "
        "reverse proxy that logs requests itself, which saves about 0.1 ms of CPU per request.",
    )
    trusted_proxies: str = _setting(
        "127.0.0.1",
        "Addresses of the reverse proxies whose `X-Forwarded-For`/`-Proto` are believed "
        "(comma-separated, `*` for any); per-address limits count the address they name.",
    )
    dns_servers: str = _setting(
        "",
        "DNS servers that check custom domains: IP addresses with an optional `:port`, "
        "comma-separated (`[::1]:53` for IPv6); empty means the system's resolvers.",
    )
    acme_issuer: str = _setting(
        "letsencrypt.org",
        "The CA domain that issues custom domains' certificates, as a CAA `issue` record names "
        "it; a domain whose CAA allows only others fails its check. Empty skips the CAA check.",
    )
    domain_recheck_seconds: str = _setting(
        "3600",
        "Custom domains are re-checked in DNS when their last check is this old; a domain "
        "that stopped pointing at us stops being served. `0` switches re-checks off.",
    )
    ready_timeout_s: str = _setting(
        "2",
        "Seconds `/readyz` waits for the core (and the outbox) to answer before it reports "
        "the service not ready (503).",
    )
    metrics_key: str = _setting(
        "",
        "Bearer key that lets a scraper read `/metrics` from any address, at least 32 "
        "characters; empty means `/metrics` answers loopback clients only.",
    )
    edge_database_url: str = _setting(
        "",
        "SQLAlchemy async URL of the edge's own database (webhook ids seen, the events feed's "
        "cursor); empty means SQLite `edge.db` in the data dir.",
    )
    webhook_retry_max_s: str = _setting(
        "300",
        "`portal core`: the longest wait, in seconds, between two attempts to deliver a webhook "
        "(waits double from 1 s up to this, with jitter, until the endpoint accepts).",
    )
    core_webhook_secret: str = _setting(
        "",
        "The `whsec_...` secret of this edge's webhook endpoint at the core (printed by "
        "`portal core-webhook`); empty switches `POST /_core/events` off.",
    )
    core_url: str = _setting(
        "",
        "Base URL of a remote core (`portal core`, e.g. `http://core.internal:8100`); with "
        "`PORTAL_CORE_KEY` the edge uses it instead of its embedded core.",
    )
    core_key: str = _setting(
        "", "The tenant's core API key (`portal core-key --tenant SLUG` on the core)."
    )
    core_timeout_s: str = _setting(
        "10", "Seconds a call to the remote core may take before it is retried (then fails)."
    )
    outbox_send_wait_s: str = _setting(
        "1.5",
        "With a remote core: seconds a customer's write waits for the core before the answer is "
        '"received, we will confirm shortly" (the write stays in the edge\'s outbox).',
    )
    outbox_retry_max_s: str = _setting(
        "60",
        "With a remote core: the longest wait, in seconds, between two attempts to send a "
        "write from the outbox (waits double from 0.5 s up to this, with jitter).",
    )
    core_cache_ttl_s: str = _setting(
        "30",
        "Seconds the edge keeps a remote core's tenant, knowledge base and form reads (dropped "
        "sooner by the core's events); `0` keeps none.",
    )

    @property
    def ws_max_per_ip_count(self) -> int:
        return int(self.ws_max_per_ip)

    @property
    def dns_server_list(self) -> list[tuple[str, int]]:
        """`dns_servers` as (address, port) pairs; ValueError when one is no IP address."""
        servers = []
        for item in (part.strip() for part in self.dns_servers.split(",")):
            if not item:
                continue
            host, port = item, "53"
            if item.startswith("["):  # [IPv6]:port
                host, _, rest = item[1:].partition("]")
                if rest:
                    if not rest.startswith(":"):
                        raise ValueError(item)
                    port = rest[1:]
            elif item.count(":") == 1:  # IPv4:port (a bare IPv6 address has several colons)
                host, port = item.split(":")
            ipaddress.ip_address(host)  # the resolver wants addresses, not names
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(item)
            servers.append((host, int(port)))
        return servers

    @property
    def ready_timeout(self) -> float:
        return float(self.ready_timeout_s)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def core_timeout(self) -> float:
        return float(self.core_timeout_s)

    @property
    def core_cache_ttl(self) -> float:
        return float(self.core_cache_ttl_s)

    @property
    def remote_core(self) -> bool:
        return bool(self.core_url and self.core_key)

    @property
    def webhook_retry_max(self) -> float:
        return float(self.webhook_retry_max_s)

    @property
    def resolved_edge_database_url(self) -> str:
        if self.edge_database_url:
            return self.edge_database_url
        return f"sqlite+aiosqlite:///{(self.data_path / 'edge.db').resolve()}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_path / 'portal.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        """Build settings from PORTAL_* variables, then apply keyword overrides."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            key = "PORTAL_" + f.name.upper()
            if key in environ:
                values[f.name] = environ[key]
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Fail early, naming the variable to set, when a setting is unusable."""
        if self.env not in ("development", "production"):
            raise SettingsError("PORTAL_ENV must be 'development' or 'production'.")
        if bool(self.core_url) != bool(self.core_key):
            raise SettingsError(
                "Set both PORTAL_CORE_URL and PORTAL_CORE_KEY for a remote core, or neither for "
                "the embedded one."
            )
        if not 0 < _seconds(self.core_timeout_s) <= 300:
            raise SettingsError(
                "PORTAL_CORE_TIMEOUT_S must be a number of seconds between 0 and 300, "
                f"not {self.core_timeout_s!r}."
            )
        if not 0 <= _seconds(self.core_cache_ttl_s) <= 3600:
            raise SettingsError(
                "PORTAL_CORE_CACHE_TTL_S must be a number of seconds from 0 (no cache) to 3600, "
                f"not {self.core_cache_ttl_s!r}."
            )
        if not 0 < _seconds(self.outbox_send_wait_s) <= 30:
            raise SettingsError(
                "PORTAL_OUTBOX_SEND_WAIT_S must be a number of seconds above 0 and at most 30, "
                f"not {self.outbox_send_wait_s!r}."
            )
        if not 0 < _seconds(self.outbox_retry_max_s) <= 3600:
            raise SettingsError(
                "PORTAL_OUTBOX_RETRY_MAX_S must be a number of seconds above 0 and at most 3600, "
                f"not {self.outbox_retry_max_s!r}."
            )
        if not self.smtp_port.isdigit():
            raise SettingsError(f"PORTAL_SMTP_PORT must be a number, not {self.smtp_port!r}.")
        if not self.ws_max_per_ip.isdigit():
            raise SettingsError(
                f"PORTAL_WS_MAX_PER_IP must be a number, not {self.ws_max_per_ip!r}."
            )
        if not self.port.isdigit():
            raise SettingsError(f"PORTAL_PORT must be a number, not {self.port!r}.")
        if self.platform_key and len(self.platform_key) < 32:
            raise SettingsError(
                "PORTAL_PLATFORM_KEY must be at least 32 characters (or empty to switch the "
                "operators' API off), e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        if self.metrics_key and len(self.metrics_key) < 32:
            raise SettingsError(
                "PORTAL_METRICS_KEY must be at least 32 characters (or empty: `/metrics` then "
                "answers loopback clients only), e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        if not 0 < _seconds(self.ready_timeout_s) <= 60:
            raise SettingsError(
                "PORTAL_READY_TIMEOUT_S must be a number of seconds above 0 and at most 60, "
                f"not {self.ready_timeout_s!r}."
            )
        if not self.header_timeout_s.isdigit() or int(self.header_timeout_s) < 1:
            raise SettingsError(
                f"PORTAL_HEADER_TIMEOUT_S must be a whole number of seconds, not "
                f"{self.header_timeout_s!r}."
            )
        if not self.body_timeout_s.isdigit() or int(self.body_timeout_s) < 1:
            raise SettingsError(
                f"PORTAL_BODY_TIMEOUT_S must be a whole number of seconds, not "
                f"{self.body_timeout_s!r}."
            )
        if self.access_log not in ("0", "1"):
            raise SettingsError(f"PORTAL_ACCESS_LOG must be 0 or 1, not {self.access_log!r}.")
        if self.public_scheme not in ("http", "https"):
            raise SettingsError("PORTAL_PUBLIC_SCHEME must be 'http' or 'https'.")
        if not self.domain_recheck_seconds.isdigit():
            raise SettingsError(
                "PORTAL_DOMAIN_RECHECK_SECONDS must be a number of seconds (0: no re-checks), "
                f"not {self.domain_recheck_seconds!r}."
            )
        try:
            _ = self.dns_server_list  # parsed only to refuse a bad value now
        except ValueError:
            raise SettingsError(
                "PORTAL_DNS_SERVERS must be IP addresses with optional ports, comma-separated, "
                f"e.g. `127.0.0.1:53,[::1]:53`, not {self.dns_servers!r}."
            ) from None
        if not 0 < _seconds(self.webhook_retry_max_s) <= 86400:
            raise SettingsError(
                "PORTAL_WEBHOOK_RETRY_MAX_S must be a number of seconds above 0 and at most "
                f"86400, not {self.webhook_retry_max_s!r}."
            )
        if self.core_webhook_secret and not _webhook_secret(self.core_webhook_secret):
            raise SettingsError(
                "PORTAL_CORE_WEBHOOK_SECRET must be the `whsec_...` secret the core printed for "
                "this edge's webhook endpoint (`portal core-webhook`), or empty."
            )
        if not self.production:
            return
        if self.secret_key == DEV_SECRET or len(self.secret_key) < 32:
            raise SettingsError(
                "PORTAL_SECRET_KEY must be set to a random string of at least 32 characters "
                "in production, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        if self.base_domain in ("localhost", ""):
            raise SettingsError(
                "PORTAL_BASE_DOMAIN must be set in production to the domain tenants are served "
                "under, e.g. `help.example.com`."
            )
        if self.public_scheme != "https":
            raise SettingsError(
                "PORTAL_PUBLIC_SCHEME must be `https` in production: sign-in links and session "
                "cookies must never travel over plain http. Serve behind a TLS proxy (see "
                "embed-examples/Caddyfile) and set PORTAL_PUBLIC_SCHEME=https."
            )


def _seconds(text: str) -> float:
    """`text` as a number of seconds; NaN (which fails every comparison) when it is none."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _webhook_secret(text: str) -> bool:
    """Whether `text` is a Standard Webhooks secret: `whsec_` and base64 of 24+ bytes."""
    if not text.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(text[len("whsec_") :], validate=True)) >= 24
    except (binascii.Error, ValueError):
        return False


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting, for the README and `portal settings`."""
    return [
        (f"PORTAL_{f.name.upper()}", str(f.default), f.metadata["help"]) for f in fields(Settings)
    ]
