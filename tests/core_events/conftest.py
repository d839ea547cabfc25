"""A `portal core` app under uvicorn per test module (two tenants, a key each), writes on its
core, and edge apps under uvicorn on a port chosen beforehand (so a webhook endpoint can name
it while the edge is down)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from standardwebhooks import Webhook
from starlette.applications import Starlette

from portal.core.api.app import create_core_app
from portal.core.api.events_routes import EventsOut, events_out_of
from portal.core.api.keys import ApiKeys
from portal.core.contract import Event, ReplyDraft, Tenant, Ticket, TicketDraft
from portal.core.embedded.core import EmbeddedCore
from portal.edge.core_events import CoreEvents
from portal.serving import server_config
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, sqlite_database, start_server, stop_server
from tests.polling import until

DEADLINE_S = 10.0


@dataclass
class CoreSide:
    url: str
    app: Starlette
    core: EmbeddedCore
    tenant: Tenant
    key: str
    other: Tenant
    other_key: str

    @property
    def events_out(self) -> EventsOut:
        return events_out_of(self.app)

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def newest(self) -> str:
        """Where the tenant's feed is now."""
        async with self.client() as client:
            response = await client.get("/core/v1/events", params={"limit": "0"})
        assert response.status_code == 200, response.text
        return str(response.json()["next"])

    async def ticket(self, tenant: Tenant | None = None, subject: str = "Help") -> Ticket:
        tenant = tenant or self.tenant
        draft = TicketDraft(subject, "It broke", "pat@example.test", "Pat")
        return await self.core.tickets.create_ticket(tenant.id, draft, uuid.uuid4().hex)

    async def reply(self, ticket: Ticket, body: str) -> int:
        draft = ReplyDraft(
            author_type="customer", author_id=ticket.customer_id, body=body, internal=False
        )
        reply = await self.core.tickets.add_reply(ticket.tenant_id, ticket.id, draft, body)
        return reply.id

    async def feed(self, after: str, *, key: str | None = None) -> list[dict[str, Any]]:
        """Every event of the feed after `after`, page by page."""
        events: list[dict[str, Any]] = []
        async with self.client(key) as client:
            while True:
                response = await client.get("/core/v1/events", params={"after": after})
                assert response.status_code == 200, response.text
                page = response.json()
                events += page["events"]
                if not page["events"]:
                    return events
                after = page["next"]

    async def journaled(self, after: str, count: int) -> list[dict[str, Any]]:
        """The feed after `after` once it holds `count` events (the journal writes behind)."""

        async def enough() -> list[dict[str, Any]] | None:
            events = await self.feed(after)
            return events if len(events) >= count else None

        found: list[dict[str, Any]] = await until(enough, f"{count} events in the feed")
        return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def core_side(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CoreSide]:
    tmp_path = tmp_path_factory.mktemp("core")
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=sqlite_database(tmp_path),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        webhook_retry_max_s="0.2",  # an endpoint that is back gets its backlog at once
    )
    core = EmbeddedCore(settings.database_url)
    app = create_core_app(settings, core)
    server, task, url = await start_server(app, settings)
    try:
        tenant = await core.tenants.create_tenant("acme", "Acme")
        other = await core.tenants.create_tenant("other", "Other")
        keys: ApiKeys = app.state.api_keys
        _, key = await keys.create(tenant.id, "tests")
        _, other_key = await keys.create(other.id, "tests")
        yield CoreSide(url, app, core, tenant, key, other, other_key)
    finally:
        await stop_server(server, task)


MARKER = "test.marker"


def marker_event() -> dict[str, Any]:
    """An event no core sends, to see that what came before it has been handed on."""
    return {
        "id": f"evt_marker_{uuid.uuid4().hex}",
        "type": MARKER,
        "time": "2026-12-20T10:00:00Z",
        "tenant_id": 1,
        "data": {},
        "cursor": "1",  # with no `previous`: the next event, leaving the edge's cursor as it is
        "previous": None,
    }


@dataclass
class Edge:
    """An edge app (`create_app`, its own embedded core and data dir) served on `port` while
    `serving()` runs; `taken_in` collects what its CoreEvents hands on."""

    settings: Settings
    port: int
    taken_in: list[Event] = field(default_factory=list)
    core_events: CoreEvents | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/_core/events"

    @asynccontextmanager
    async def serving(self, *, listen: bool = True) -> AsyncIterator[Edge]:
        """Serve the edge (a fresh app on the same data dir: a restarted process); with
        `listen`, collect its core events from the start."""
        from portal.app import create_app

        core = EmbeddedCore(sqlite_database(Path(self.settings.data_dir)))
        await core.start()
        app = create_app(self.settings, core=core)
        config = server_config(
            app,
            self.settings,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            log_config=None,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        collecting: asyncio.Task[None] | None = None
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            self.core_events = server.lifespan.state["services"].core_events
            if listen:
                collecting = asyncio.create_task(self._collect())
                await asyncio.sleep(0)  # subscribed: the stream listens from its first step
            yield self
        finally:
            if collecting is not None:
                collecting.cancel()
                await asyncio.gather(collecting, return_exceptions=True)
            await stop_server(server, task)
            await core.close()
            self.core_events = None

    async def _collect(self) -> None:
        assert self.core_events is not None
        async for event in self.core_events.events():
            self.taken_in.append(event)

    async def settled(self) -> list[Event]:
        """What was taken in, once all handed on so far is collected: a signed marker event is
        posted to the edge and comes through the same stream after everything before it."""
        marker = marker_event()
        body = json.dumps(marker)
        now = datetime.now(UTC)
        headers = {
            "webhook-id": marker["id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(self.settings.core_webhook_secret).sign(
                marker["id"], now, body
            ),
        }
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(self.webhook_url, content=body, headers=headers)
        assert response.json() == {"status": "accepted"}, response.text
        await until(lambda: any(e.type == MARKER for e in self.taken_in), "the marker event")
        self.taken_in[:] = [e for e in self.taken_in if e.type != MARKER]
        return self.taken_in

    async def took_in(self, count: int) -> list[Event]:
        async def enough() -> list[Event] | None:
            return self.taken_in if len(self.taken_in) >= count else None

        found: list[Event] = await until(enough, f"{count} core events taken in by the edge")
        return found


def edge_settings(tmp_path: Path, secret: str, **extra: str) -> Settings:
    data = tmp_path / "edge"
    data.mkdir(exist_ok=True)
    return Settings(
        data_dir=str(data),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        core_webhook_secret=secret,
        access_log="0",
        **extra,
    )
