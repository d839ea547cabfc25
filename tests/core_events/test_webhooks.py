"""Signed webhooks from a real `portal core` to a real edge (`POST /_core/events` under
uvicorn): registration, delivery, refusals, and the backlog of an endpoint that was down."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from portal.core.webhooks.endpoints import new_secret
from tests.core_events.conftest import CoreSide, Edge, edge_settings, until
from tests.processes import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def register(core_side: CoreSide, url: str, key: str | None = None) -> httpx.Response:
    async with core_side.client() as client:
        return await client.post(
            "/core/v1/webhooks",
            json={"url": url},
            headers={"Idempotency-Key": key or uuid.uuid4().hex},
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(
    core_side: CoreSide, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Edge]:
    port = free_port()
    registered = await register(core_side, f"http://127.0.0.1:{port}/_core/events")
    assert registered.status_code == 201, registered.text
    yield Edge(edge_settings(tmp_path_factory.mktemp("edge"), registered.json()["secret"]), port)


def signed(secret: str, event: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """A delivery of `event` as the core signs it (at `at`, default now)."""
    body = json.dumps(event)
    at = at or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": event["id"],
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event["id"], at, body),
    }
    return {"content": body.encode(), "headers": headers}


def an_event(tenant_id: int, type: str = "test.replayed") -> dict[str, Any]:
    # Cursor 1 and no `previous`: taken as the next event, without moving the edge's cursor.
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": type,
        "time": "2026-12-20T10:00:00Z",
        "tenant_id": tenant_id,
        "data": {"ticket_id": 1},
        "cursor": "1",
        "previous": None,
    }


async def test_endpoints_are_registered_listed_and_removed_with_idempotency_keys(
    core_side: CoreSide,
):
    async with core_side.client() as client:
        no_key = await client.post("/core/v1/webhooks", json={"url": "https://e.test/hook"})
        bad = await client.post(
            "/core/v1/webhooks", json={"url": "ftp://e.test/"}, headers={"Idempotency-Key": "b"}
        )
        first = await register(core_side, "https://e.test/hook", key="same")
        again = await register(core_side, "https://e.test/hook", key="same")
        listed = (await client.get("/core/v1/webhooks")).json()["webhooks"]
        theirs = await core_side.client(core_side.other_key).get("/core/v1/webhooks")
        removed = await client.delete(
            f"/core/v1/webhooks/{first.json()['id']}", headers={"Idempotency-Key": "d1"}
        )
        unknown = await client.delete(
            f"/core/v1/webhooks/{first.json()['id']}", headers={"Idempotency-Key": "d2"}
        )

    assert no_key.status_code == 400
    assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "/body/url"
    assert first.status_code == 201 and first.json()["secret"].startswith("whsec_")
    assert again.json() == first.json()  # the first answer, replayed
    assert again.headers["idempotent-replayed"] == "true"
    mine = [w for w in listed if w["id"] == first.json()["id"]]
    assert mine and mine[0]["url"] == "https://e.test/hook" and "secret" not in mine[0]
    assert first.json()["id"] not in [w["id"] for w in theirs.json()["webhooks"]]
    assert removed.status_code == 204
    assert unknown.status_code == 404


async def test_a_write_on_the_core_reaches_the_edge_as_a_signed_webhook(
    core_side: CoreSide, edge: Edge
):
    async with edge.serving():
        ticket = await core_side.ticket(subject="Webhook me")
        taken_in = await edge.took_in(1)
        await until(
            lambda: any(e.data.get("ticket_id") == ticket.id for e in edge.taken_in),
            "the ticket's events at the edge",
        )
    created = [e for e in taken_in if e.type == "ticket.created"]
    assert created and created[-1].tenant_id == core_side.tenant.id
    assert created[-1].data == {"ticket_id": ticket.id}


async def test_bad_signature_stale_timestamp_and_replay_are_refused(
    core_side: CoreSide, edge: Edge
):
    secret = edge.settings.core_webhook_secret
    event = an_event(core_side.tenant.id)
    async with edge.serving(), httpx.AsyncClient(timeout=10) as client:
        before = len(edge.taken_in)
        forged = await client.post(edge.webhook_url, **signed(new_secret(), event))
        stale = await client.post(
            edge.webhook_url, **signed(secret, event, at=datetime.now(UTC) - timedelta(minutes=6))
        )
        early = await client.post(
            edge.webhook_url, **signed(secret, event, at=datetime.now(UTC) + timedelta(minutes=6))
        )
        unsigned = await client.post(edge.webhook_url, content=json.dumps(event))
        garbage = signed(secret, event)
        garbage["content"] = b"{not json"
        garbage["headers"]["webhook-signature"] = Webhook(secret).sign(
            event["id"], datetime.now(UTC), "{not json"
        )
        unparsable = await client.post(edge.webhook_url, **garbage)
        assert len(await edge.settled()) == before  # nothing refused was taken in

        delivery = signed(secret, event)
        accepted = await client.post(edge.webhook_url, **delivery)
        replayed = await client.post(edge.webhook_url, **delivery)
        resigned = await client.post(edge.webhook_url, **signed(secret, event))
        taken_in = await edge.settled()
        scraped = (await client.get(edge.url + "/metrics")).text

    assert forged.status_code == 401
    assert stale.status_code == 401 and "too old" in stale.json()["error"]
    assert early.status_code == 401 and "too new" in early.json()["error"]
    assert unsigned.status_code == 401
    assert unparsable.status_code == 400
    assert accepted.json() == {"status": "accepted"}
    # A replayed id has no effect; 200, not 409, so that our sender stops retrying it.
    assert replayed.status_code == 200 and replayed.json() == {"status": "duplicate"}
    assert resigned.json() == {"status": "duplicate"}
    assert [e.type for e in taken_in[before:]] == ["test.replayed"]
    # Each refusal is counted by reason, each event taken in by its channel.
    counted = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
    }
    failures = "portal_webhook_failures_total"
    assert counted[(failures, ("signature",))] == 4
    assert counted[(failures, ("malformed",))] == 1
    assert counted[(failures, ("replayed",))] == 2
    assert counted[("portal_events_received_total", ("webhook",))] >= 1


async def test_an_endpoint_that_was_down_gets_its_backlog_in_order(core_side: CoreSide, edge: Edge):
    sender = core_side.events_out.sender
    failed_before = sender.failures["network"]
    ticket = await core_side.ticket(subject="While you were out")
    replies = [await core_side.reply(ticket, f"reply {n}") for n in range(3)]
    # The edge's port is closed: deliveries fail and are retried.
    await until(lambda: sender.failures["network"] > failed_before, "a failed delivery")

    edge.taken_in.clear()
    async with edge.serving():
        await until(
            lambda: (
                [e.data.get("reply_id") for e in edge.taken_in if e.type == "ticket.replied"]
                == replies
            ),
            "the backlog at the edge",
        )
        await edge.settled()
    types = [e.type for e in edge.taken_in]
    assert types.index("ticket.created") < types.index("ticket.replied")
    assert types.count("ticket.created") == 1 and types.count("ticket.replied") == 3


async def test_an_edge_with_the_feed_gets_what_it_missed_once_though_both_channels_bring_it(
    core_side: CoreSide, tmp_path: Path
):
    port = free_port()
    registered = await register(core_side, f"http://127.0.0.1:{port}/_core/events")
    endpoint_id = registered.json()["id"]
    settings = edge_settings(
        tmp_path, registered.json()["secret"], core_url=core_side.url, core_key=core_side.key
    )
    edge = Edge(settings, port)
    async with edge.serving():  # its first start: it stores where the feed is
        await edge.settled()
    edge.taken_in.clear()
    ticket = await core_side.ticket(subject="Both channels")
    replies = [await core_side.reply(ticket, f"reply {n}") for n in range(3)]
    newest = await core_side.newest()

    async def delivered_all() -> bool:
        async with core_side.client() as client:
            listed = (await client.get("/core/v1/webhooks")).json()["webhooks"]
        mine = next(w for w in listed if w["id"] == endpoint_id)
        return int(mine["delivered_through"]) >= int(newest)

    # Back up: the catch-up at start and the sender's retries bring the same events.
    async with edge.serving():
        await until(delivered_all, "the sender's deliveries of the backlog")
        taken_in = await edge.settled()
    types = [e.type for e in taken_in]
    assert types.count("ticket.created") == 1 and types.count("ticket.replied") == 3
    assert [e.data["reply_id"] for e in taken_in if e.type == "ticket.replied"] == replies
