"""`RemoteCore`: a HelpdeskCore whose every domain calls the core's HTTP API.

Each domain object is made from its protocol: one method per protocol method, which binds the
arguments to the signature and hands them to `CoreClient.call`. The few methods the API does not
expose (they span tenants) are answered here for the key's own tenant.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, cast

from portal.core.api.operations import NOT_EXPOSED
from portal.core.api.wire import adapter
from portal.core.bus import EventBus
from portal.core.contract import (
    DOMAINS,
    Capabilities,
    ChatDomain,
    CustomersDomain,
    Event,
    FormsDomain,
    HelpdeskCore,
    KnowledgeBaseDomain,
    NotFound,
    Tenant,
    TenantsDomain,
    TicketsDomain,
)
from portal.core.contract.chat import ChatPost, PostOutcome
from portal.core.contract.tenants import Domain
from portal.core.remote.cache import TTL_S, DroppingBus, ReadCache
from portal.core.remote.client import CoreClient, CoreUnavailable, RetryPolicy, Timer


class RemoteBackend:
    """The HTTP client's lifetime, and the events of the remote core.

    Events come in through the edge's webhook receiver and feed catch-up, which publish them on
    `bus`; `events()` hands them to the apps like the embedded core's own, after `cache` has
    dropped what they say changed.
    """

    def __init__(self, client: CoreClient, cache: ReadCache | None = None) -> None:
        self.client = client
        self.cache = cache if cache is not None else ReadCache()
        self.bus: EventBus = DroppingBus(self.cache)
        self.tenant: Tenant | None = None

    async def start(self) -> None:
        self.tenant = adapter(Tenant).validate_python(await self.client.get_json("/core/v1/tenant"))

    async def close(self) -> None:
        await self.client.aclose()

    def events(self) -> AsyncIterator[Event]:
        return self.bus.subscribe()

    async def ping(self) -> None:
        await self.client.ping()

    @property
    def tenant_id(self) -> int:
        if self.tenant is None:
            raise CoreUnavailable("the remote core has not been started")
        return self.tenant.id


class RemoteDomain:
    domain = ""

    def __init__(self, backend: RemoteBackend) -> None:
        self._backend = backend

    async def _call(self, method: str, args: dict[str, Any]) -> Any:
        if "tenant_id" in args and args["tenant_id"] != self._backend.tenant_id:
            # The key speaks for one tenant; any other is not there, as for a foreign id.
            raise NotFound(f"tenant {args['tenant_id']} is not this core key's tenant")
        cache, client = self._backend.cache, self._backend.client
        try:
            return await cache.read(
                self.domain, method, args, lambda: client.call(self.domain, method, args)
            )
        finally:
            cache.wrote(self.domain, method, args)  # (failed writes too: they may have landed)


def _remote_method(name: str, signature: inspect.Signature) -> Any:
    async def method(self: RemoteDomain, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        return await self._call(name, arguments)

    method.__name__ = name
    return method


def _domain_class(domain: str, base: type[RemoteDomain] = RemoteDomain) -> type[RemoteDomain]:
    protocol = DOMAINS[domain]
    methods: dict[str, Any] = {"domain": domain}
    for name, function in inspect.getmembers(protocol, inspect.isfunction):
        if name.startswith("_") or name in NOT_EXPOSED or name in vars(base):
            continue
        methods[name] = _remote_method(name, inspect.signature(function))
    return type(f"Remote{protocol.__name__}", (base,), methods)


class _TenantsExtras(RemoteDomain):
    """What spans tenants, answered for the key's own tenant only."""

    async def list_tenants(self) -> list[Tenant]:
        return [await self._own_tenant()]

    async def _own_tenant(self) -> Tenant:
        data = await self._backend.client.get_json("/core/v1/tenant")
        tenant: Tenant = adapter(Tenant).validate_python(data)
        self._backend.tenant = tenant
        return tenant

    async def create_tenant(self, slug: str, name: str, *, domains: tuple[str, ...] = ()) -> Tenant:
        raise NotImplementedError("tenants are created on the core (portal create-tenant there)")

    async def claim_domains_to_check(self, checked_before: datetime, limit: int) -> list[Domain]:
        return []  # the core's own process checks custom domains


class _ChatExtras(RemoteDomain):
    async def post_chat_messages(self, posts: Sequence[ChatPost]) -> list[PostOutcome]:
        """One call per message, in order (the API has no batch across tenants)."""
        outcomes: list[PostOutcome] = []
        for post in posts:
            try:
                outcomes.append(
                    await self._call(
                        "post_chat_message",
                        {
                            "tenant_id": post.tenant_id,
                            "conversation_id": post.conversation_id,
                            "draft": post.draft,
                        },
                    )
                )
            except CoreUnavailable:
                raise
            except Exception as error:  # NotFound, Conflict, ValueError: this message's answer
                outcomes.append(error)
        return outcomes


class RemoteCore(HelpdeskCore):
    """The help desk at `url` (the core's base URL), as the tenant of `key`.

    `start()` fetches the key's tenant and the core's capabilities; until then capabilities say
    nothing is there. Reads that may be a little stale are kept `cache_ttl` seconds (0: none)
    and dropped by the core's events (`cache.py`).
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        timer: Timer | None = None,
        client: CoreClient | None = None,
        cache_ttl: float = TTL_S,
    ) -> None:
        self.client = client or CoreClient(url, key, timeout=timeout, retry=retry, timer=timer)
        self.backend = RemoteBackend(self.client, ReadCache(cache_ttl))
        backend = self.backend
        super().__init__(
            tenants=cast(TenantsDomain, _domain_class("tenants", _TenantsExtras)(backend)),
            kb=cast(KnowledgeBaseDomain, _domain_class("kb")(backend)),
            customers=cast(CustomersDomain, _domain_class("customers")(backend)),
            tickets=cast(TicketsDomain, _domain_class("tickets")(backend)),
            forms=cast(FormsDomain, _domain_class("forms")(backend)),
            chat=cast(ChatDomain, _domain_class("chat", _ChatExtras)(backend)),
            capabilities=Capabilities.none(),
            backends=[backend],
        )

    @property
    def bus(self) -> EventBus:
        return self.backend.bus

    async def start(self) -> None:
        await super().start()
        data = await self.client.get_json("/core/v1/capabilities")
        self.capabilities = adapter(Capabilities).validate_python(data)
