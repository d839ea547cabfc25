"""The remote core: the contract over the core's HTTP API (`/core/v1`), with httpx.

`RemoteCore(url, key)` is a HelpdeskCore whose domains call the operations table; selected by
PORTAL_CORE_URL and PORTAL_CORE_KEY.
"""

from portal.core.remote.client import CoreClient, CoreUnavailable
from portal.core.remote.core import RemoteBackend, RemoteCore

__all__ = ["CoreClient", "CoreUnavailable", "RemoteBackend", "RemoteCore"]
