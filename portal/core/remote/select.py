"""Which core an edge runs on: the remote one when PORTAL_CORE_URL and PORTAL_CORE_KEY are set,
else the embedded core on PORTAL_DATABASE_URL."""

from __future__ import annotations

from portal.core.contract import HelpdeskCore
from portal.core.embedded.core import EmbeddedCore
from portal.core.remote.client import Timer
from portal.core.remote.core import RemoteCore
from portal.settings import Settings


def core_from_settings(settings: Settings, *, timer: Timer | None = None) -> HelpdeskCore:
    if settings.remote_core:
        return RemoteCore(
            settings.core_url,
            settings.core_key,
            timeout=settings.core_timeout,
            timer=timer,
            cache_ttl=settings.core_cache_ttl,
        )
    return EmbeddedCore(settings.resolved_database_url)
